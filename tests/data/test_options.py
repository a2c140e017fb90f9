"""Reading options of datasets on disk: --color (grayscale -> RGB handling),
--normalize (none / imagenet / train-split statistics) and --lazy (decode when
indexed), through the readers, load_data and the CLI."""
import pytest
import torch
from disk_fixtures import make_folder, make_xray, png

from teakit.cli import main
from teakit.commands import load_data
from teakit.data import ImageSet
from teakit.data.lazy import LazyImages
from teakit.data.normalize import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    channel_stats,
    normalize_splits,
)
from teakit.data.readers import read_folder, read_xray


def test_color_gray_makes_every_image_luminance(tmp_path):
    make_folder(tmp_path)                               # a0 is RGB (200, 30, 30); a1 grayscale 128
    rgb, _ = read_folder(tmp_path, size=8)
    gray, _ = read_folder(tmp_path, size=8, color="gray")
    red = rgb["train"].x[0]
    assert red[0].mean() > 0.7 and red[1].mean() < 0.2            # default: colour kept
    luma = (200 * 299 + 30 * 587 + 30 * 114) // 1000 / 255        # PIL's L of (200, 30, 30)
    g = gray["train"].x[0]
    assert torch.allclose(g, torch.full_like(g, luma), atol=1 / 255)
    assert torch.equal(gray["train"].x[1], rgb["train"].x[1])     # a grayscale file: the same either way
    with pytest.raises(ValueError, match="color='cmyk'"):
        read_folder(tmp_path, color="cmyk")


def test_normalize_dataset_uses_train_only(tmp_path):
    make_folder(tmp_path)
    png(tmp_path / "img" / "a2.png", color=(255, 255, 255))        # a val image far from train
    raw, _ = read_folder(tmp_path, size=8)
    norm, record = normalize_splits(raw, "dataset")
    tr = raw["train"].x
    mean = tr.mean(dim=(0, 2, 3))
    std = tr.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1, unbiased=False)
    assert record["mode"] == "dataset"
    assert torch.allclose(torch.tensor(record["mean"]), mean.double().float(), atol=1e-6)
    assert torch.allclose(torch.tensor(record["std"]), std, atol=1e-6)
    # train normalised to mean 0, std 1 per channel; val with train's statistics
    nt = norm["train"].x
    assert torch.allclose(nt.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(nt.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1, unbiased=False), torch.ones(3), atol=1e-4)
    expect = (raw["val"].x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    assert torch.allclose(norm["val"].x, expect, atol=1e-5)
    assert norm["val"].norm == (tuple(record["mean"]), tuple(record["std"]))
    assert norm["val"].subset([0]).norm == norm["val"].norm
    assert norm["train"].fingerprint() != raw["train"].fingerprint()


def test_normalize_imagenet_and_none(tmp_path):
    make_folder(tmp_path)
    raw, _ = read_folder(tmp_path, size=8)
    same, record = normalize_splits(raw, "none")
    assert same is raw and record is None
    inet, record = normalize_splits(raw, "imagenet")
    assert record == {"mode": "imagenet", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    x = raw["test"].x
    assert torch.allclose(inet["test"].x[:, 1], (x[:, 1] - 0.456) / 0.224)
    with pytest.raises(ValueError, match="already normalised"):
        normalize_splits(inet, "imagenet")
    with pytest.raises(ValueError, match="normalize='zscore'"):
        normalize_splits(raw, "zscore")


def test_imageset_norm_checks_the_raw_range():
    x = torch.full((2, 3, 4, 4), 0.5)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    ok = ImageSet(x=(x - 0.5) / 0.25, y=torch.zeros(2, dtype=torch.int64), mask=torch.ones(2, 1, 4, 4, dtype=torch.bool),
                  bias=torch.zeros(2, dtype=torch.int64), norm=(mean, std))
    assert ok.norm == (mean, std)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\] before normalisation"):
        ImageSet(x=torch.full((2, 3, 4, 4), 3.0), y=ok.y, mask=ok.mask, bias=ok.bias, norm=(mean, std))
    with pytest.raises(ValueError, match="must lie in"):
        ImageSet(x=torch.full((2, 3, 4, 4), -1.0), y=ok.y, mask=ok.mask, bias=ok.bias)


def test_lazy_reads_when_indexed(tmp_path):
    make_xray(tmp_path)
    eager, _ = read_xray(tmp_path, size=8, external_sources=["C"])
    lazy, info = read_xray(tmp_path, size=8, external_sources=["C"], lazy=True)
    tr = lazy["train"]
    assert isinstance(tr.x, LazyImages) and tr.x.shape == (4, 3, 8, 8) and len(tr) == 4
    assert info["sizes"]["train"] == [(8, 8)] * 4                  # validated (decoded) once, pixels dropped
    for name in eager:
        assert torch.equal(lazy[name].x[:], eager[name].x)
    idx = torch.tensor([3, 1])
    assert torch.equal(tr.x[idx], eager["train"].x[idx]) and torch.equal(tr.x[2], eager["train"].x[2])
    assert torch.equal(tr.x[torch.tensor([True, False, False, True])], eager["train"].x[[0, 3]])
    sub = tr.subset(idx)
    assert sub.lazy and torch.equal(sub.x[:], eager["train"].x[idx]) and sub.y.tolist() == [0, 0]
    # the fingerprint follows the files: rewriting one changes it
    before = tr.fingerprint()
    assert before == read_xray(tmp_path, size=8, external_sources=["C"], lazy=True)[0]["train"].fingerprint()
    png(tmp_path / "x0.png", size=(9, 9))
    assert tr.fingerprint() != before
    # normalisation statistics of lazy images equal those of the tensors
    (m1, s1), (m2, s2) = channel_stats(lazy["val"].x, batch_size=2), channel_stats(eager["val"].x)
    assert m1 == pytest.approx(m2) and s1 == pytest.approx(s2)


def test_lazy_bad_file_after_validation_names_it(tmp_path):
    make_xray(tmp_path)
    lazy, _ = read_xray(tmp_path, size=8, lazy=True)
    (tmp_path / "x1.png").write_bytes(b"broken")
    lazy["train"].x[[0]]                                            # other rows still decode
    with pytest.raises(ValueError, match=r"metadata\.csv, row 3: cannot decode image file .*x1\.png"):
        lazy["train"].x[:2]
    (tmp_path / "x2.png").unlink()
    with pytest.raises(ValueError, match=r"row 4: image file .*x2\.png is missing"):
        lazy["train"].x[2]


def test_load_data_options(tmp_path):
    make_folder(tmp_path)
    data, info = load_data("folder", data_root=tmp_path, size=8, normalize="dataset", lazy=True, color="gray",
                           limit=1, with_info=True)
    assert data["train"].lazy and len(data["train"]) == 1 and data["train"].norm is not None
    assert info["normalize"]["mode"] == "dataset" and info["files"]["train"] == ["img/a0.png"]
    with pytest.raises(ValueError, match="--lazy: for datasets on disk, not colored-digits"):
        load_data("colored-digits", lazy=True)


def test_cli_reading_options(tmp_path, capsys):
    make_folder(tmp_path / "d")
    rc = main(["check-data", "--dataset", "folder", "--data-root", str(tmp_path / "d"), "--size", "8",
               "--normalize", "dataset", "--color", "gray", "--lazy"])
    out = capsys.readouterr().out
    assert rc == 0 and "normalize: dataset (mean " in out and "split train: 4 images" in out
    args = ["train", "--dataset", "folder", "--data-root", str(tmp_path / "d"), "--size", "8", "--epochs", "1",
            "--width", "4", "--normalize", "imagenet", "--no-progress", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    from teakit.checkpoint import load_checkpoint
    assert load_checkpoint(tmp_path / "r").config["data_options"]["normalize"] == "imagenet"
    capsys.readouterr()
    assert main(["evaluate", "--model", str(tmp_path / "r")]) == 0  # re-reads the data normalised the same way
