"""colored-mnist: reading tiny fake MNIST IDX files (raw, .gz, torchvision layout)."""
import gzip
import struct

import numpy as np
import pytest
import torch
from disk_fixtures import N_TEST, N_TRAIN, idx_bytes, write_mnist

from teakit.data.colored_digits import PALETTE
from teakit.data.colored_mnist import FILES, read_colored_mnist
from teakit.data.readers import DataError, check_data

SPLITS = ("train", "val", "train_debiased", "id", "ood", "swapped")


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist_raw")
    arrays = write_mnist(root)
    return root, arrays


@pytest.fixture(scope="module")
def read(raw_root):
    return read_colored_mnist(raw_root[0])


def test_shapes_and_splits(read, raw_root):
    splits, info = read
    assert tuple(splits) == SPLITS
    n_val = round(N_TRAIN / 12)
    counts = {"train": N_TRAIN - n_val, "val": n_val, "train_debiased": N_TRAIN - n_val,
              "id": N_TEST, "ood": N_TEST, "swapped": N_TEST}
    for name, ds in splits.items():
        assert ds.x.shape == (counts[name], 3, 28, 28), name
        assert ds.mask.shape == (counts[name], 1, 28, 28)
        assert len(info["files"][name]) == counts[name] and len(info["sizes"][name]) == counts[name]
    assert info["classes"] == [str(k) for k in range(10)]
    # train + val partition the MNIST training set, labels from the file
    _, (tr_img, tr_lab, te_img, te_lab) = raw_root
    idx = sorted(int(f.split(":")[1]) for s in ("train", "val") for f in info["files"][s])
    assert idx == list(range(N_TRAIN))
    tr_idx = [int(f.split(":")[1]) for f in info["files"]["train"]]
    assert splits["train"].y.tolist() == tr_lab[tr_idx].tolist()
    assert splits["id"].y.tolist() == te_lab.tolist()
    assert "split train:" in check_data(splits, info)


def test_colours_bias_and_masks(read, raw_root):
    splits, _ = read
    palette = torch.tensor(PALETTE)
    for name in ("train", "val", "id"):
        ds = splits[name]
        assert torch.equal(ds.bias, ds.y), name                     # 100 % biased
    for name in ("train", "val", "id", "swapped"):
        ds = splits[name]
        peak = ds.x.amax(dim=(2, 3))                               # brightest pixel = the colour
        assert torch.allclose(peak, palette[ds.bias]), name
    sw = splits["swapped"]
    assert (sw.bias != sw.y).all() and (sw.bias >= 0).all()
    for name in ("ood", "train_debiased"):
        assert (splits[name].bias == -1).all()
    _, (tr_img, _, te_img, _) = raw_root
    a = te_img.astype(np.float32) / 255.0
    a = a / a.max(axis=(1, 2), keepdims=True)
    for name in ("id", "ood", "swapped"):
        assert torch.equal(splits[name].mask[:, 0], torch.from_numpy(a > 0.5)), name
        bg = ~splits[name].mask.expand_as(splits[name].x)
        assert (splits[name].x[torch.from_numpy(a == 0)[:, None].expand_as(splits[name].x)] == 0).all()
        assert bg.any()
    assert torch.equal(splits["train"].mask, splits["train_debiased"].mask)


def test_determinism_and_seed(raw_root, read):
    a, _ = read
    b, _ = read_colored_mnist(raw_root[0], seed=0)
    c, info_c = read_colored_mnist(raw_root[0], seed=1)
    for name in SPLITS:
        assert torch.equal(a[name].x, b[name].x) and torch.equal(a[name].bias, b[name].bias)
    assert not torch.equal(a["ood"].x, c["ood"].x)
    assert not torch.equal(a["val"].y, c["val"].y) or not torch.equal(a["val"].x, c["val"].x)


def test_gz_and_torchvision_layout_match_raw(tmp_path, read):
    write_mnist(tmp_path / "gz", gz=True)
    write_mnist(tmp_path / "tv" / "MNIST" / "raw", gz=True)
    for root in (tmp_path / "gz", tmp_path / "tv"):
        splits, info = read_colored_mnist(root)
        for name in SPLITS:
            assert splits[name].fingerprint() == read[0][name].fingerprint(), (root, name)
        assert info["source_files"]["train_images"].endswith(".gz")


def test_size_and_bias_options(raw_root):
    splits, _ = read_colored_mnist(raw_root[0], size=16, bias=0.5, seed=3)
    assert splits["train"].x.shape[1:] == (3, 16, 16)
    assert splits["id"].x.amax(dim=(1, 2, 3)).min() > 0.3
    assert torch.equal(splits["id"].bias, splits["id"].y)


def test_missing_file_names_it(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / FILES["test_labels"]).unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        read_colored_mnist(tmp_path)


def test_bad_magic_names_file(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / FILES["train_images"]
    data = bytearray(path.read_bytes())
    data[:4] = struct.pack(">I", 2049)
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*magic"):
        read_colored_mnist(tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file_names_it(tmp_path, gz):
    write_mnist(tmp_path, gz=gz)
    name = FILES["test_images"] + (".gz" if gz else "")
    path = tmp_path / name
    data = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    data = data[:-100]
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.*truncated"):
        read_colored_mnist(tmp_path)


def test_corrupt_gz_and_label_mismatch(tmp_path):
    write_mnist(tmp_path, gz=True)
    (tmp_path / (FILES["train_labels"] + ".gz")).write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz"):
        read_colored_mnist(tmp_path)
    other = tmp_path / "other"
    write_mnist(other)
    lab = np.zeros(N_TEST - 1, dtype=np.uint8)
    (other / FILES["test_labels"]).write_bytes(idx_bytes(lab, 2049))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        read_colored_mnist(other)


def test_read_disk_dataset_branch(raw_root):
    from teakit.commands import DISK_DATASETS, load_data, read_disk_dataset

    assert "colored-mnist" in DISK_DATASETS
    splits, info = read_disk_dataset("colored-mnist", raw_root[0], size=28)
    assert tuple(splits) == SPLITS
    data = load_data("colored-mnist", data_root=raw_root[0], size=28, limit=5)
    assert data["train"].x.shape == (5, 3, 28, 28)
