"""Head-bias calibration (teakit.calibrate) and its use by TEA."""
import copy

import pytest
import torch

from teakit import explain
from teakit.calibrate import calibrate_head_bias, prior_bias
from teakit.data.imageset import ImageSet


def test_prior_bias_matches_the_prior_and_undoes_known_offsets():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 6, generator=g) * 2
    for prior in (None, torch.tensor([0.3, 0.1, 0.1, 0.2, 0.2, 0.1])):
        b = prior_bias(z, prior)
        p = torch.softmax(z + b, 1).mean(0)
        want = torch.full((6,), 1 / 6) if prior is None else prior
        assert torch.allclose(p, want, atol=1e-5) and abs(b.sum().item()) < 1e-5
    # offsets added to every logit are removed again (up to a constant, which softmax ignores)
    offset = torch.tensor([3.0, -2.0, 0.5, 0.0, 1.0, -2.5])
    b0, b1 = prior_bias(z), prior_bias(z + offset)
    assert torch.allclose(b1, b0 - (offset - offset.mean()), atol=1e-4)
    with pytest.raises(ValueError, match="prior must be"):
        prior_bias(z, torch.tensor([0.5, 0.5]))


def _images(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 8, 8, generator=g)
    return ImageSet(x=x, y=torch.randint(0, 10, (n,), generator=g), mask=torch.ones(n, 1, 8, 8, dtype=torch.bool),
                    bias=torch.zeros(n, dtype=torch.long))


def test_calibration_changes_only_the_head_bias_and_no_heatmap(make_tiny_student):
    torch.manual_seed(0)
    model, data = make_tiny_student(), _images()
    with torch.no_grad():
        model[-1].bias.copy_(torch.linspace(-3, 3, 10))  # a strong per-class offset
    before = {k: v.clone() for k, v in model.state_dict().items()}
    target = torch.arange(len(data)) % 10
    maps = explain(model, data.x, target, eps=0.05)
    shift = calibrate_head_bias(model, data, "cpu", max_images=64)
    after = model.state_dict()
    assert shift > 0.5 and model.training
    assert all(torch.equal(before[k], after[k]) for k in before if k != "4.bias")
    assert not torch.equal(before["4.bias"], after["4.bias"])
    assert torch.equal(explain(model, data.x, target, eps=0.05), maps)  # heatmaps do not see the bias
    model.eval()
    p = torch.softmax(model(data.x[:64]), 1).mean(0)  # calibrated on the first 64 images only
    assert torch.allclose(p, torch.full((10,), 0.1), atol=1e-4)
    nobias = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 10, bias=False))
    with pytest.raises(ValueError, match="no bias"):
        calibrate_head_bias(nobias, data, "cpu")


@pytest.mark.parametrize("bias_prior", ["uniform", "none", [3, 1, 1, 1, 1, 1, 1, 1, 1, 1]])
def test_tea_calibrates_the_head_bias_every_epoch_unless_told_not_to(teacher_dir, tmp_path, bias_prior):
    from teakit import commands as C
    from teakit.runs import build_student, load_model, model_spec
    from teakit.train import TrainConfig

    spec = model_spec("cnn", 10, width=4, depth=2)
    out = tmp_path / "run"
    result = C.distill("colored-digits", teacher_dir, out, spec=spec, cfg=TrainConfig(epochs=2, batch_size=32),
                       tea={"bias_prior": bias_prior, "feature_weight": 0.0}, data_options={"limit": 64}, progress=False)
    model, config = load_model(out, "last")
    # class frequencies of one's own are normalised to a prior
    want = bias_prior if isinstance(bias_prior, str) else [v / sum(bias_prior) for v in bias_prior]
    saved = config["objective"]["bias_prior"]
    assert saved == want if isinstance(want, str) else saved == pytest.approx(want)
    train = C.load_data("colored-digits", limit=64)["train"]
    model.eval()
    with torch.no_grad():
        p = torch.softmax(model(train.x), 1).mean(0)
    init_bias = build_student(spec, 0).head.bias  # the student's own initial weights, cfg.seed = 0
    if bias_prior != "none":
        assert all("bias_shift" in r["train"] for r in result["history"])
        prior = torch.full((10,), 0.1) if bias_prior == "uniform" else torch.tensor(want)
        assert torch.allclose(p, prior, atol=1e-4)
    else:
        assert not any("bias_shift" in r["train"] for r in result["history"])
        assert torch.equal(model.head.bias, init_bias)  # heatmaps never move the bias (Adam, zero gradient)
    # a copied, frozen head is the teacher's and stays so
    C.distill("colored-digits", teacher_dir, tmp_path / "copy", cfg=TrainConfig(epochs=1, batch_size=32),
              copy_head=True, data_options={"limit": 64}, progress=False)
    student, _ = load_model(tmp_path / "copy", "last")
    from teakit.runs import load_teacher
    assert torch.equal(student.head.bias, load_teacher(teacher_dir).classifier.head.bias)


def test_a_prior_of_ones_own_is_checked():
    from teakit.objectives.tea import TEA
    assert TEA(None, 3, bias_prior=(2, 1, 1)).bias_prior == (0.5, 0.25, 0.25)
    for bad in ([1, 1], [1, 0, 1], [1, -1, 1], "flat"):
        with pytest.raises(ValueError, match="bias_prior"):
            TEA(None, 3, bias_prior=bad)


def test_on_imbalanced_classes_the_teachers_prior_holds_where_the_uniform_one_fails():
    """3:1 classes: calibrating to a uniform mean prediction moves majority images to the minority class;
    the teacher's mean prediction (no labels) keeps the student as accurate as its teacher."""
    from teakit.calibrate import calibrate_to_prior, teacher_prior
    from teakit.teachers import DebiasedTeacher

    g = torch.Generator().manual_seed(0)
    n = 400
    y = (torch.rand(n, generator=g) < 0.25).long()                     # 3 : 1
    x = torch.rand(n, 3, 4, 4, generator=g) * 0.2
    x[:, 0, 0, 0] = y.float() * 0.5 + torch.randn(n, generator=g) * 0.2  # one noisy pixel carries the class
    data = ImageSet(x=x.clamp(0, 1), y=y, mask=torch.ones(n, 1, 4, 4, dtype=torch.bool),
                    bias=torch.zeros(n, dtype=torch.long))

    def linear(w):
        m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 2))
        with torch.no_grad():
            m[1].weight.zero_()
            m[1].weight[1, 0], m[1].weight[0, 0] = w, -w
            m[1].bias.copy_(torch.tensor([0.25 * w, -0.25 * w]))  # the boundary between the class means
        return m
    teacher = DebiasedTeacher(linear(20.0))
    acc = lambda m: (m(data.x).argmax(1) == y).float().mean().item()  # noqa: E731
    prior = teacher_prior(teacher, data, "cpu")
    assert 0.2 < prior[1] < 0.35 and abs(prior.sum().item() - 1) < 1e-9
    scores = {}
    for name, p in (("uniform", "uniform"), ("teacher", prior), ("oracle", torch.bincount(y) / n)):
        student = linear(10.0)  # the teacher's direction, another scale: its offsets must be found again
        with torch.no_grad():
            student[1].bias.add_(torch.tensor([-3.0, 3.0]))
        calibrate_to_prior(student, data, "cpu", p)
        scores[name] = acc(student)
    assert scores["teacher"] > scores["uniform"] + 0.05, scores
    assert abs(scores["teacher"] - scores["oracle"]) < 0.03 and abs(scores["teacher"] - acc(teacher)) < 0.03, scores


def test_tea_with_the_teachers_prior_computes_it_once(teacher_dir):
    from teakit import commands as C
    from teakit.objectives.tea import TEA
    from teakit.runs import build_student, load_teacher

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=64)["train"]
    obj = TEA(teacher, 10, bias_prior="teacher", feature_weight=0.0)
    student = build_student({"name": "cnn", "num_classes": 10, "kwargs": {}}, 0)
    logs = obj.after_epoch(student, data, "cpu")
    prior = obj._teacher_prior
    assert logs["bias_shift"] >= 0 and torch.allclose(prior.sum(), torch.tensor(1.0, dtype=prior.dtype))
    student.eval()
    with torch.no_grad():
        mean = torch.softmax(student(data.x).double(), 1).mean(0)
    assert torch.allclose(mean, prior, atol=1e-4)
    obj.after_epoch(student, data, "cpu")
    assert obj._teacher_prior is prior


def test_decision_bias_matches_the_frequencies_of_top_classes_where_mean_matching_does_not():
    """A soft (unconfident) student of 3:1 classes: the offsets that make its mean probability of the rare
    class 0.25 leave it the top class of far fewer rows; matching decisions makes it the top of a quarter."""
    from teakit.calibrate import decision_bias

    g = torch.Generator().manual_seed(0)
    n = 4000
    y = (torch.rand(n, generator=g) < 0.25).long()
    score = (y.float() * 2 - 1) * 0.3 + torch.randn(n, generator=g) * 0.3   # a weak margin: soft logits
    z = torch.stack([-score, score], 1) * 0.5
    frequencies = torch.tensor([0.75, 0.25], dtype=torch.float64)

    def top_share(b):
        return (z + b).argmax(1).float().mean().item()
    by_mean, by_decisions = top_share(prior_bias(z, frequencies)), top_share(decision_bias(z, frequencies))
    assert abs(by_decisions - 0.25) < 0.01, by_decisions
    assert by_mean < 0.2, by_mean                   # mean matching under-predicts the rare class
    # three classes, and offsets already in the logits are undone
    z3 = torch.randn(n, 3, generator=g) * 0.4 + torch.tensor([2.0, 0.0, -1.0])
    f3 = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    shares = torch.bincount((z3 + decision_bias(z3, f3)).argmax(1), minlength=3).double() / n
    assert torch.allclose(shares, f3, atol=0.01), shares


def test_tea_with_the_teachers_decisions_calibrates_to_their_frequencies(teacher_dir):
    from teakit import commands as C
    from teakit.calibrate import teacher_decisions
    from teakit.objectives.tea import TEA
    from teakit.models import get_head
    from teakit.runs import load_teacher

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=64)["train"]
    want = teacher_decisions(teacher, data, "cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        tops = teacher(data.x, generator=gen).argmax(1)
    assert torch.allclose(want, torch.bincount(tops, minlength=10).double().clamp_min(1e-4) / 64, atol=1e-3)
    obj = TEA(teacher, 10, bias_prior="teacher-decisions", feature_weight=0.0)
    # a student that ranks like the teacher but with its class offsets lost: calibration must find them again
    student = copy.deepcopy(teacher.classifier).requires_grad_(True)
    with torch.no_grad():
        get_head(student).bias.add_(torch.linspace(-3, 3, 10))
    assert obj.after_epoch(student, data, "cpu")["bias_shift"] > 1
    assert torch.equal(obj._teacher_prior, want)
    student.eval()
    with torch.no_grad():
        shares = torch.bincount(student(data.x).argmax(1), minlength=10).double() / 64
    assert (shares - want).abs().max() <= 2 / 64 + 1e-3, (shares, want)  # 64 images: within two of each count


def test_distill_keeps_the_teachers_prior_in_its_folder_for_every_heatmap_student(teacher_dir, tmp_path, monkeypatch):
    import shutil

    from teakit import calibrate
    from teakit import commands as C
    from teakit.runs import load_teacher, model_spec, teacher_hash, teacher_prior_keeper
    from teakit.train import TrainConfig

    folder = shutil.copytree(teacher_dir, tmp_path / "teacher", ignore=shutil.ignore_patterns("priors"))
    calls, decisions = [], calibrate.teacher_decisions
    monkeypatch.setattr(calibrate, "teacher_decisions", lambda *a, **k: calls.append(1) or decisions(*a, **k))
    run = dict(spec=model_spec("cnn", 10, width=4, depth=2), cfg=TrainConfig(epochs=2, batch_size=32),
               tea={"feature_weight": 0.0}, data_options={"limit": 64}, progress=False)
    C.distill("colored-digits", folder, tmp_path / "a", **run)
    assert len(calls) == 1  # once for all epochs of a run, as before
    (kept,) = (folder / "priors").iterdir()
    C.distill("colored-digits", folder, tmp_path / "b", objective="gradxinput", **{**run, "tea": {}})
    C.distill("colored-digits", folder, tmp_path / "c", **{**run, "cfg": TrainConfig(epochs=1, batch_size=32)})
    assert len(calls) == 1 and list((folder / "priors").iterdir()) == [kept]  # read back by the other students
    teacher, train = load_teacher(folder), C.load_data("colored-digits", limit=64)["train"]
    want = decisions(teacher, train, "cpu")
    keep = teacher_prior_keeper(teacher, folder, teacher_hash(teacher))
    assert torch.equal(keep("teacher-decisions", train, lambda: 1 / 0), want)  # the kept value, not recomputed
    # another kind of prior, other images or other weights: computed and kept apart
    other = C.load_data("colored-digits", limit=32)["train"]
    for kind, data, digest in (("teacher", train, teacher_hash(teacher)), ("teacher-decisions", other, "w"),
                               ("teacher-decisions", train, "w")):
        value = teacher_prior_keeper(teacher, folder, digest)(kind, data, lambda: torch.full((10,), 0.1))
        assert torch.equal(value, torch.full((10,), 0.1))
    assert len(list((folder / "priors").iterdir())) == 4
    kept.write_bytes(b"broken")  # unreadable: computed again
    assert torch.equal(keep("teacher-decisions", train, lambda: want + 1), want + 1)
