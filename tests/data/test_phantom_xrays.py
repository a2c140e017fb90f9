"""Tests for the built-in chest-X-ray analogue ``phantom-xrays`` (teakit.data.phantom_xrays)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from teakit.data import ImageSet, load_builtin
from teakit.data import phantom_xrays as P
from teakit.data.colored_digits import rng_for
from teakit.data.load import load_data

SIZES = {"train": 1800, "val": 300, "train_debiased": 1800, "id": 450, "swapped": 450, "external": 450}
TEST_SPLITS = ("id", "swapped", "external")


@pytest.fixture(scope="module")
def full():
    """The default build (64 x 64, bias 0.9, seed 0), with its info."""
    return load_builtin("phantom-xrays", seed=0, with_info=True)


@pytest.fixture(scope="module")
def others():
    """The same build through load_data, and another seed with another bias."""
    return {"0-again": load_data("phantom-xrays", 0, with_info=True),
            "1-bias0.6": P.build_phantom_xrays(1, bias=0.6)}


def counts(s: ImageSet) -> np.ndarray:
    """Images per (class, hospital)."""
    out = np.zeros((P.NUM_CLASSES, len(P.HOSPITALS)), dtype=np.int64)
    np.add.at(out, (s.y.numpy(), s.bias.numpy()), 1)
    return out


def features(s: ImageSet, keep: str) -> np.ndarray:
    """Pixels (one channel, 4 x 4 average-pooled) with the lungs (``keep="outside"``) or
    everything but the lungs (``keep="lungs"``) set to 0.5."""
    kept = s.mask if keep == "lungs" else ~s.mask
    x = torch.where(kept, s.x[:, :1], torch.tensor(0.5))
    return F.avg_pool2d(x, 4).flatten(1).double().numpy()


def probe(splits: dict, keep: str) -> dict:
    """Accuracy of a ridge classifier fitted on train's ``features``, per test split."""
    from sklearn.linear_model import RidgeClassifier

    x = features(splits["train"], keep)
    mu, sd = x.mean(0), x.std(0) + 1e-3
    clf = RidgeClassifier(alpha=10.0).fit((x - mu) / sd, splits["train"].y.numpy())
    return {k: float((clf.predict((features(splits[k], keep) - mu) / sd) == splits[k].y.numpy()).mean())
            for k in ("val",) + TEST_SPLITS}


# --------------------------------------------------------------------------- layout
def test_registered():
    from teakit.commands import _groupdro_groups
    from teakit.data.load import BIAS_IS_GROUP
    from teakit.data.names import BUILTIN, DATASETS

    assert "phantom-xrays" in BUILTIN and "phantom-xrays" in DATASETS
    # as for xray: the bias is the hospital, GroupDRO's groups are (label, training hospital) pairs
    assert "phantom-xrays" not in BIAS_IS_GROUP
    data = {k: ImageSet(x=torch.zeros(6, 3, 2, 2), y=torch.arange(6) % 3, mask=torch.ones(6, 1, 2, 2, dtype=bool),
                        bias=torch.arange(6)) for k in ("train", "val")}
    assert _groupdro_groups("phantom-xrays", data, 3, {}) == {"num_classes": 3, "num_groups": 18}


def test_shapes_dtypes_range(full):
    splits, _ = full
    assert tuple(splits) == P.SPLITS
    for name, s in splits.items():
        n = SIZES[name]
        assert isinstance(s, ImageSet) and len(s) == n, name
        assert s.x.shape == (n, 3, 64, 64) and s.x.dtype == torch.float32
        assert s.mask.shape == (n, 1, 64, 64) and s.mask.dtype == torch.bool
        assert s.y.dtype == torch.int64 and s.bias.dtype == torch.int64
        assert 0.0 <= s.x.min().item() and s.x.max().item() <= 1.0
        assert torch.equal(s.x[:, 0], s.x[:, 1]) and torch.equal(s.x[:, 0], s.x[:, 2])   # grayscale
        assert set(s.y.unique().tolist()) == {0, 1, 2}
        area = s.mask.float().mean((1, 2, 3))
        assert area.min() > 0.08 and area.max() < 0.3, name      # two lungs in every image
        # two lung fields: mask pixels on both sides of the midline in every image
        assert (s.mask[..., :28].flatten(1).any(1) & s.mask[..., 36:].flatten(1).any(1)).all()
    assert torch.equal(splits["train"].mask, splits["train_debiased"].mask)
    assert torch.equal(splits["train"].y, splits["train_debiased"].y)


def test_counts_per_split_class_hospital(full):
    splits, _ = full
    for name in ("train", "val", "id", "swapped", "external"):
        assert (counts(splits[name]) == P.split_counts(name)).all(), name
    train = counts(splits["train"])
    for k, own in enumerate(P.OWN_HOSPITALS):
        assert train[k, list(own)].tolist() == [270, 270]
        assert sorted(train[k].tolist()) == [0, 0, 15, 15, 15, 15, 270, 270]   # 90 % from its 2 hospitals
        assert train[k].sum() == 600
        assert counts(splits["val"])[k, list(own)].sum() == 90 and counts(splits["id"])[k, list(own)].sum() == 135
        nxt = P.OWN_HOSPITALS[(k + 1) % 3]
        assert counts(splits["swapped"])[k, list(nxt)].sum() == 135          # mostly another class's hospitals
    ext = counts(splits["external"])
    assert (ext[:, list(P.EXTERNAL_HOSPITALS)] == 75).all() and ext[:, list(P.TRAIN_HOSPITALS)].sum() == 0
    for name in ("train", "val", "id", "swapped", "train_debiased"):
        assert not np.isin(splits[name].bias.numpy(), P.EXTERNAL_HOSPITALS).any(), name
    # train_debiased: the hospital is drawn independently of the class (uniform over the 6)
    deb = counts(splits["train_debiased"])[:, list(P.TRAIN_HOSPITALS)]
    assert deb.min() > 60 and deb.max() < 140


def test_info_names_each_image_source(full):
    splits, info = full
    assert info["classes"] == ["normal", "pneumonia", "covid"]
    assert info["source_names"] == list(P.HOSPITAL_NAMES) == sorted(P.HOSPITAL_NAMES)   # as read_xray numbers them
    assert set(info["external_sources"]) == {P.HOSPITAL_NAMES[h] for h in P.EXTERNAL_HOSPITALS}
    for name, s in splits.items():
        assert info["sources"][name] == [P.HOSPITAL_NAMES[h] for h in s.bias.tolist()], name


def test_evaluation_reports_per_hospital(full):
    """What `tea evaluate` does with load_data's info: accuracy and AUC per hospital."""
    from teakit.evaluate import evaluate_splits

    splits, info = full
    tests = {k: splits[k].subset(slice(0, 60)) for k in TEST_SPLITS}
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 64 * 64, 3))
    res = evaluate_splits(model, tests, relevance=False, sources={k: info["sources"][k][:60] for k in TEST_SPLITS})
    ext = res["splits"]["external"]
    assert set(ext["source_accuracy"]) == {P.HOSPITAL_NAMES[h] for h in P.EXTERNAL_HOSPITALS}
    assert set(ext["source_auc"]["Glenrock"]) == {"0", "1", "2"} and "macro_f1" in ext
    assert set(res["splits"]["id"]["source_accuracy"]) <= set(P.HOSPITAL_NAMES[:6])


# --------------------------------------------------------------------------- masks and marks
@pytest.fixture(scope="module")
def layers():
    """600 chests (200 per class) rendered by every hospital, with their layers."""
    y = np.repeat(np.arange(3), 200)
    clean, mask, lesion = P.draw_chests(y, 64, rng_for(5, 0))
    hospital = np.arange(600) % len(P.HOSPITALS)
    img, marks, frame = P.burn_in(clean, hospital, 64, rng_for(5, 1))
    return y, hospital, clean, mask, lesion, img, marks, frame


def test_lesions_inside_the_lungs(layers):
    y, _, _, mask, lesion, *_ = layers
    assert not (lesion != 0)[~mask].any()                      # every lesion pixel lies in the mask
    assert (lesion >= 0).all()
    mass = lesion.flatten(1).sum(1)
    assert (mass[y == 1] > 0.5).all() and (mass[y == 2] > 0.5).all()   # every sick chest has a lesion
    sick = mass[y != 0].median()
    assert (mass[y == 0] < 0.5 * sick).all()                   # healthy ones at most a tiny granuloma
    # pneumonia: one lung; covid: both
    left, right = lesion[..., :32].flatten(1).sum(1), lesion[..., 32:].flatten(1).sum(1)
    one_sided = torch.minimum(left, right) < 0.05 * torch.maximum(left, right)
    assert one_sided[y == 1].float().mean() > 0.9 and one_sided[y == 2].float().mean() < 0.05


def test_marks_outside_the_lungs(full, layers):
    _, hospital, _, mask, _, img, marks, frame = layers
    overlay = (marks > 0) | frame
    assert not (overlay & mask).any()                          # no mark or frame pixel on a lung
    assert (marks > 0.9).flatten(1).sum(1).min() >= 8          # every hospital burns text in
    # the marks are burned in: bright where their coverage is high (up to noise)
    assert (img[marks > 0.99] - P.MARK_VALUE).abs().mean() < 0.05
    value = P.hospital_marks(64)[2][torch.from_numpy(hospital)].view(-1, 1, 1).expand_as(img)
    on_frame = frame & (marks == 0)
    assert on_frame.any() and (img[on_frame] - value[on_frame]).abs().mean() < 0.05
    # every mark lies in the top / bottom 15 % or (frames) the outer 6 %; no lung ever reaches there
    strips = torch.zeros(64, 64, dtype=torch.bool)
    strips[:10], strips[54:], strips[:, :4], strips[:, 60:] = True, True, True, True
    assert not (overlay & ~strips).any()
    splits, _ = full
    for name, s in splits.items():
        assert not (s.mask[:, 0] & strips).any(), name
    # each hospital's marks differ from every other's
    marks = P.hospital_marks(64)[0]
    for a in range(len(P.HOSPITALS)):
        for b in range(a):
            assert (marks[a] - marks[b]).abs().sum() > 20, (a, b)


# --------------------------------------------------------------------------- signal and shortcut
def test_class_signal_only_in_the_lungs_and_the_shortcut_outside(full):
    splits, _ = full
    outside = probe(splits, "outside")     # lungs blanked: only hospital marks, contrast, noise, anatomy
    lungs = probe(splits, "lungs")         # everything but the lungs blanked
    # nothing of the class outside the lungs: chance on the balanced external hospitals
    assert abs(outside["external"] - 1 / 3) < 0.08, outside
    # ... but the hospital gives it away where hospital and class go together, and misleads where they swap
    assert outside["id"] > 0.75 and outside["val"] > 0.75, outside
    assert outside["swapped"] < 0.2, outside
    # the lungs hold the class, and not through the hospital
    assert min(lungs["id"], lungs["swapped"], lungs["external"]) > 0.55, lungs
    assert abs(lungs["id"] - lungs["swapped"]) < 0.1, lungs


# --------------------------------------------------------------------------- seeds, options
def test_seeds(full, others):
    a, _ = full
    b, info_b = others["0-again"]
    c = others["1-bias0.6"]
    assert info_b["sources"]["external"] == full[1]["sources"]["external"]
    for name in P.SPLITS:
        assert torch.equal(a[name].x, b[name].x) and torch.equal(a[name].mask, b[name].mask), name
        assert torch.equal(a[name].y, b[name].y) and torch.equal(a[name].bias, b[name].bias), name
        assert a[name].fingerprint() != c[name].fingerprint(), name
    for name in TEST_SPLITS:                                   # another seed: other chests, not just another bias
        assert not torch.equal(a[name].mask, c[name].mask), name


def test_bias_option():
    assert (P.split_counts("train", 0.6)[0] == [180, 180, 60, 60, 60, 60, 0, 0]).all()
    assert (P.split_counts("val", 1.0)[2] == [0, 0, 0, 0, 50, 50, 0, 0]).all()
    assert (P.split_counts("id", 0.6) == P.split_counts("id")).all()   # the test splits ignore it


def test_bias_option_reaches_the_splits(others):
    c = others["1-bias0.6"]
    assert (counts(c["train"]) == P.split_counts("train", 0.6)).all()
    assert (counts(c["val"]) == P.split_counts("val", 0.6)).all()
    assert (counts(c["id"]) == P.split_counts("id")).all()


def test_options_and_errors():
    with pytest.raises(ValueError, match="size"):
        P.build_phantom_xrays(0, size=32)
    with pytest.raises(ValueError, match="bias"):
        load_builtin("phantom-xrays", bias=1.5)
    with pytest.raises(ValueError, match="seed"):
        load_builtin("phantom-xrays", seed=-1)
    with pytest.raises(TypeError):
        load_builtin("phantom-xrays", colour="red")


def test_larger_size_keeps_the_layout():
    y = np.arange(12) % 3
    clean, mask, lesion = P.draw_chests(y, 96, rng_for(0, 0))
    img, marks, frame = P.burn_in(clean, np.arange(12) % 8, 96, rng_for(0, 1))
    assert img.shape == (12, 96, 96) and not (lesion != 0)[~mask].any()
    assert not (((marks > 0) | frame) & mask).any() and (marks > 0.9).flatten(1).sum(1).min() >= 8


# --------------------------------------------------------------------------- export
def _small(full, n=40):
    splits, info = full
    return ({k: v.subset(slice(0, n)) for k, v in splits.items()},
            {**info, "sources": {k: v[:n] for k, v in info["sources"].items()}})


def _check_round_trip(splits, info, root):
    from teakit.data.readers import read_xray

    back, back_info = read_xray(root, size=64, external_sources=("Glenrock", "Harwick"))
    assert set(back) == {"train", "val", "test", "train_debiased", "swapped", "external"}
    assert back_info["source_names"] == list(P.HOSPITAL_NAMES)
    for name, s in splits.items():
        r = back["test" if name == "id" else name]
        assert torch.equal(r.y, s.y) and torch.equal(r.mask, s.mask) and torch.equal(r.bias, s.bias), name
        assert back_info["sources"]["test" if name == "id" else name] == info["sources"][name]
        assert (r.x - s.x).abs().max() <= 0.5 / 255 + 1e-6, name      # PNG quantisation only


def test_export_round_trip(full, tmp_path):
    splits, info = _small(full)
    path = P.export_xray_folder(splits, info, tmp_path)
    assert path == tmp_path / "metadata.csv"
    header = path.read_text().splitlines()[0]
    assert header == "filename,label,split,source,mask_filename"
    _check_round_trip(splits, info, tmp_path)
    # with --class-names the classes get their names, in the same order
    from teakit.data.readers import read_xray
    _, named = read_xray(tmp_path, size=64, classes=list(P.CLASSES))
    assert named["classes"] == list(P.CLASSES)


def test_export_refuses_missing_sources(full, tmp_path):
    splits, info = _small(full, 5)
    with pytest.raises(ValueError, match="sources"):
        P.export_xray_folder(splits, {**info, "sources": {}}, tmp_path)


def test_cli_export(full, tmp_path, monkeypatch, capsys):
    import teakit.data
    from teakit.cli import main

    small = _small(full)
    calls = []

    def fake(name, seed=0, *, with_info=False, **options):
        calls.append((name, seed, with_info, options))
        return small
    monkeypatch.setattr(teakit.data, "load_builtin", fake)
    assert main(["export", "--dataset", "phantom-xrays", "--out", str(tmp_path), "--data-seed", "3"]) == 0
    assert calls == [("phantom-xrays", 3, True, {})]
    assert "per source" in capsys.readouterr().out
    _check_round_trip(*small, tmp_path)
