"""Evaluation numbers against hand-computed values on a fixture."""
import pytest
import torch

from teakit.evaluate import group_metrics


def test_group_metrics_by_hand():
    # 6 samples, 3 classes; groups 0,0,1,1,2,-1 (the last has no group)
    logits = torch.tensor([[3., 0, 0], [0, 3, 0], [0, 3, 0], [0, 0, 3], [3, 0, 0], [0, 0, 3]])
    y = torch.tensor([0, 0, 1, 2, 1, 2])
    group = torch.tensor([0, 0, 1, 1, 2, -1])
    train_groups = torch.tensor([0, 0, 0, 1, 2])     # frequencies 3/5, 1/5, 1/5
    m = group_metrics(logits, y, group, train_groups)
    # predictions 0,1,1,2,0,2: correct 1,0,1,1,0,1
    assert m["group_accuracy"] == {"0": 0.5, "1": 1.0, "2": 0.0}
    assert m["worst_group_accuracy"] == 0.0
    assert m["average_group_accuracy"] == pytest.approx(0.5)
    assert m["adjusted_average_accuracy"] == pytest.approx(0.6 * 0.5 + 0.2 * 1.0 + 0.2 * 0.0)
    # per-class F1: class 0: P=1/2 R=1/2 -> 0.5; class 1: P=1/2 R=1/2 -> 0.5; class 2: 1.0
    assert m["macro_f1"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    # AUC of class 2 (one-vs-rest): its probability is highest exactly on the two class-2 samples -> 1.0
    assert m["auc_per_class"]["2"] == pytest.approx(1.0)


def test_binary_auc():
    logits = torch.tensor([[0., 1], [0, 2], [0, -1], [0, 0.5]])
    y = torch.tensor([1, 1, 0, 0])
    # scores 1, 2, -1, 0.5: positives {1, 2} beat negatives {-1, 0.5} in all 4 pairs -> AUC 1
    assert group_metrics(logits, y, torch.full((4,), -1))["auc"] == pytest.approx(1.0)
    y2 = torch.tensor([1, 0, 0, 1])  # positives {1, 0.5} vs negatives {2, -1}: 2 of 4 pairs -> 0.5
    assert group_metrics(logits, y2, torch.full((4,), -1))["auc"] == pytest.approx(0.5)


def test_source_metrics_by_hand():
    from teakit.evaluate import source_metrics
    # two classes; the score of class 1 is softmax([0, z])[1], monotone in z
    z = torch.tensor([2., 1, -1, -2, 0.5, 3, 1, -1, 1])
    logits = torch.stack([torch.zeros_like(z), z], 1)
    y = torch.tensor([1, 0, 1, 0, 1, 1, 0, 0, 0])
    sources = ["A"] * 4 + ["B"] * 3 + ["C"] * 2
    m = source_metrics(logits, y, sources)
    # A: predictions 1,1,0,0 vs 1,0,1,0 -> 2/4; positives {2, -1} beat negatives {1, -2} in 3 of 4 pairs
    # B: predictions 1,1,1 vs 1,1,0 -> 2/3; positives {0.5, 3} vs negative {1}: 1 of 2 pairs
    # C: only class 0 -> accuracy 1/2 (z = 1 predicts 1), AUC undefined
    assert m["source_accuracy"] == pytest.approx({"A": 0.5, "B": 2 / 3, "C": 0.5})
    assert m["source_auc"] == {"A": pytest.approx(0.75), "B": pytest.approx(0.5), "C": None}
    # macro-F1 over the classes among each source's labels and predictions: A 0.5 and 0.5; B class 1
    # P 2/3 R 1 -> 0.8, class 0 none right -> 0; C class 0 P 1 R 1/2 -> 2/3, class 1 (predicted once) 0
    assert m["source_macro_f1"] == pytest.approx({"A": 0.5, "B": 0.4, "C": 1 / 3})
    # three classes: one-vs-rest per class present in the source
    logits3 = torch.tensor([[2., 0, 0], [0, 2, 0], [0, 0, 2], [1, 0, 2]])
    m3 = source_metrics(logits3, torch.tensor([0, 1, 2, 1]), ["A"] * 4)
    # predictions 0,1,2,2 -> 3/4.  Softmax scores of class 1: rows 0, 2: 1/(e^2+2) = 0.106, row 1:
    # 0.787, row 3: 1/(e^2+e+1) = 0.090; its positives rows 1 and 3 against rows 0 and 2 win 2 of
    # 4 pairs -> 0.5.  Class 0 (row 0: 0.787 vs 0.106, 0.106, e/(e^2+e+1) = 0.245) and class 2
    # (row 2: 0.787 vs 0.106, 0.106, e^2/(e^2+e+1) = 0.665) win every pair -> 1
    assert m3["source_accuracy"] == {"A": 0.75}
    assert m3["source_auc"]["A"] == {"0": pytest.approx(1.0), "1": pytest.approx(0.5), "2": pytest.approx(1.0)}
    with pytest.raises(ValueError, match="3 source names for 4 images"):
        source_metrics(logits3, torch.tensor([0, 1, 2, 1]), ["A"] * 3)


def test_external_sources_reported_apart():
    from teakit.data import ImageSet
    from teakit.evaluate import evaluate_splits

    class Lookup(torch.nn.Module):
        """Logits [0, z] with z read from the image's first pixel (z = 10 * (p - 0.5))."""
        def forward(self, x):
            z = 10 * (x[:, 0, 0, 0] - 0.5)
            return torch.stack([torch.zeros_like(z), z], 1)

    def split(zs, ys):
        x = torch.zeros(len(zs), 3, 2, 2)
        x[:, 0, 0, 0] = torch.tensor(zs) / 10 + 0.5
        return ImageSet(x=x, y=torch.tensor(ys), mask=torch.ones(len(zs), 1, 2, 2, dtype=torch.bool),
                        bias=torch.zeros(len(zs), dtype=torch.int64))
    splits = {"test": split([2., 1, -1, -2], [1, 0, 1, 0]), "external": split([0.5, 3, 1], [1, 1, 0])}
    res = evaluate_splits(Lookup(), splits, relevance=False,
                          sources={"test": ["A", "A", "B", "B"], "external": ["C", "C", "C"]})["splits"]
    assert res["test"]["source_accuracy"] == {"A": 0.5, "B": 0.5}
    # A: z 2 (y 1) beats z 1 (y 0); B: z -1 (y 1) beats z -2 (y 0) -> AUC 1 each, pooled 3/4
    assert res["test"]["source_auc"] == {"A": 1.0, "B": 1.0}
    assert set(res["external"]["source_accuracy"]) == {"C"}            # the external source only in its split
    assert res["external"]["source_accuracy"]["C"] == pytest.approx(2 / 3)
    assert res["external"]["source_auc"]["C"] == pytest.approx(0.5)
    assert res["external"]["auc"] == pytest.approx(0.5) and res["test"]["auc"] == pytest.approx(0.75)


def _segmenter_teacher_and_split(make_tiny_student, n=10):
    """A SegmenterTeacher (noise fill) of random tiny modules whose mask keeps about half of
    every image, and one split of n images with half-background masks."""
    from teakit.data import ImageSet
    from teakit.teachers import SegmenterTeacher

    torch.manual_seed(0)
    segmenter = torch.nn.Conv2d(3, 1, 1)
    with torch.no_grad():  # foreground where the red channel is above 0.5
        segmenter.weight.zero_()
        segmenter.weight[0, 0] = 20.0
        segmenter.bias.fill_(-10.0)
    teacher = SegmenterTeacher(segmenter, make_tiny_student(), fill="noise").freeze()
    x = torch.rand(n, 3, 6, 6)
    mask = torch.zeros(n, 1, 6, 6, dtype=torch.bool)
    mask[..., :3] = True
    split = ImageSet(x=x, y=torch.arange(n) % 10, mask=mask, bias=torch.arange(n) % 2)
    return teacher, split


def test_evaluating_a_segmenter_teacher_twice_gives_identical_numbers(make_tiny_student):
    from teakit.evaluate import evaluate_splits

    teacher, split = _segmenter_teacher_and_split(make_tiny_student)
    student = make_tiny_student().eval()
    runs = [evaluate_splits(teacher, {"test": split}, batch_size=4) for _ in range(2)]
    assert runs[0] == runs[1]
    assert "background_relevance" in runs[0]["splits"]["test"]
    # agreement of a student uses the teacher's noise fill too
    agree = [evaluate_splits(student, {"test": split}, teacher=teacher, batch_size=4) for _ in range(2)]
    assert agree[0] == agree[1]
    # an image's fill does not depend on the batch it falls in
    other = evaluate_splits(teacher, {"test": split}, batch_size=3)["splits"]["test"]
    for key in ("accuracy", "background_relevance"):
        assert other[key] == pytest.approx(runs[0]["splits"]["test"][key], rel=1e-5, abs=1e-7)
    # the teacher does draw noise: an unseeded teacher gives other logits than the seeded evaluation
    from teakit.evaluate import image_generators, predict
    seeded = predict(teacher, split.x, batch_size=4)
    assert torch.equal(seeded, teacher(split.x, generator=image_generators(range(len(split)))))
    assert not torch.allclose(seeded, teacher(split.x, generator=torch.Generator().manual_seed(1)))


def test_per_image_generators_fill_like_one_batch():
    from teakit.evaluate import image_generators
    from teakit.teachers import fill_background

    x = torch.rand(5, 3, 4, 4)
    keep = torch.zeros(5, 1, 4, 4, dtype=torch.bool)
    whole = fill_background(x, keep, "noise", image_generators(range(5)))
    parts = torch.cat([fill_background(x[:2], keep[:2], "noise", image_generators(range(2))),
                       fill_background(x[2:], keep[2:], "noise", image_generators(range(2, 5)))])
    assert torch.equal(whole, parts)
    assert not torch.equal(whole[0], whole[1])  # every image its own noise
    with pytest.raises(ValueError, match="2 generators for a batch of 5 images"):
        fill_background(x, keep, "noise", image_generators(range(2)))


def test_balanced_agreement_weighs_each_teacher_class_once():
    from teakit.evaluate import balanced_agreement

    teacher = torch.tensor([0] * 90 + [1] * 10)
    student = torch.zeros(100, dtype=torch.long)          # never predicts the rare class
    assert (student == teacher).float().mean().item() == pytest.approx(0.9)
    assert balanced_agreement(student, teacher) == pytest.approx(0.5)   # (90/90 + 0/10) / 2
    student = teacher.clone()
    student[:9] = 1                                       # 9 of the common class moved to the rare one
    assert balanced_agreement(student, teacher) == pytest.approx((81 / 90 + 1.0) / 2)
    # a class the teacher never predicts does not count, whatever the student does with it
    assert balanced_agreement(torch.tensor([2, 0, 1]), torch.tensor([0, 0, 1])) == pytest.approx((0.5 + 1) / 2)
    with pytest.raises(ValueError, match="balanced_agreement"):
        balanced_agreement(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long))


def test_a_models_logits_come_from_its_relevance_maps_forward(make_tiny_student, monkeypatch):
    """With background relevance measured, a plain model is run once over a split: the accuracy, the
    agreement and the relevance equal those of separate passes (predict, background_relevance)."""
    from teakit import evaluate

    teacher, split = _segmenter_teacher_and_split(make_tiny_student, n=24)
    split.y = torch.randint(0, 10, (24,), generator=torch.Generator().manual_seed(1))
    student = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                  torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10))
    with torch.no_grad():
        student[1].running_mean.uniform_(-0.5, 0.5), student[1].running_var.uniform_(0.5, 2.0)
    logits = evaluate.predict(student, split.x, batch_size=5)
    share = evaluate.background_relevance(student, split, batch_size=5)
    t_logits = evaluate.predict(teacher, split.x, batch_size=5)
    seen = []
    predict = evaluate.predict
    monkeypatch.setattr(evaluate, "predict", lambda model, *a, **k: seen.append(model) or predict(model, *a, **k))
    res = evaluate.evaluate_splits(student, {"test": split}, teacher=teacher, batch_size=5)["splits"]["test"]
    assert seen == [teacher]  # the student is not run a second time
    assert res["accuracy"] == (logits.argmax(1) == split.y).float().mean().item()
    assert res["agreement_with_teacher"] == (logits.argmax(1) == t_logits.argmax(1)).float().mean().item()
    assert res["background_relevance"] == pytest.approx(share, rel=1e-6)
    share_again, kept = evaluate.background_relevance(student, split, batch_size=5, return_logits=True)
    assert share_again == share and torch.allclose(kept, logits, atol=1e-6)
    with pytest.raises(ValueError, match="plain model"):
        evaluate.background_relevance(teacher, split, return_logits=True)
