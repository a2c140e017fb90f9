"""COCO-on-Places reader: the image-folder layout (split/class/place/image, masks
optional) and the generator's arrays converted to .npz, on fixtures written here;
one test per bad-input case (the DataError names the file)."""
import csv
import sys

import numpy as np
import pytest
import torch
from disk_fixtures import make_coco_places, scene
from PIL import Image

from teakit.data.coco_places import read_coco_on_places
from teakit.data.readers import DataError, export_subpopbench


# generator folder -> (class ids, place ids, images per (class, place))
def test_folder_layout(tmp_path):
    assert make_coco_places(tmp_path) == 12 + 6 + 6 + 3 + 3
    splits, info = read_coco_on_places(tmp_path, size=8)
    assert list(splits) == ["train", "val", "id", "ood", "sg"]
    assert [len(splits[s]) for s in splits] == [12, 6, 6, 3, 3]
    assert info["classes"] == ["0", "1", "2"]
    assert info["place_names"] == ["0", "1", "2", "3", "4", "5"]          # integer ids are the ids
    P = 6
    tr = splits["train"]
    files = info["files"]["train"]
    for k, f in enumerate(files):                                         # train/<class>/<place>/<n>.png
        _, c, p, _ = f.split("/")
        assert tr.y[k] == int(c) and tr.bias[k] == int(c) * P + int(p)    # group = (class, place)
        assert info["attributes"]["train"][k] == int(p)                   # bias attribute = place
    assert info["group_names"][1 * P + 5] == "1/5"
    assert splits["ood"].bias.tolist() == [5, P + 5, 2 * P + 5]
    assert info["sizes"]["train"][0] == (12, 12)
    # masks: the middle square (3..8 of 12 -> 2..5 of 8) is foreground, the border background
    m = tr.mask[0, 0]
    assert m[3:5, 3:5].all() and not m[0].any() and not m[:, 7].any()
    # class colour inside the square, place grey outside
    x = tr.x[files.index(next(f for f in files if f.startswith("train/2/1/")))]
    assert x[2, 4, 4] > 0.8 and abs(x[0, 0, 0].item() - 40 / 255) < 1e-3


def test_folder_layout_names_no_masks_and_subpopbench(tmp_path):
    layout = {"train": ((0, 1), (0, 1), 1), "val": ((0, 1), (0,), 1)}
    make_coco_places(tmp_path, masks=False, layout=layout)
    for split in ("train", "val"):  # rename ids to names: boat / dog, beach / forest
        for c_dir in sorted((tmp_path / split).iterdir()):
            for p_dir in sorted(c_dir.iterdir()):
                p_dir.rename(c_dir / ["beach", "forest"][int(p_dir.name)])
            c_dir.rename(tmp_path / split / ["boat", "dog"][int(c_dir.name)])
    splits, info = read_coco_on_places(tmp_path, size=8)
    assert info["classes"] == ["boat", "dog"] and info["place_names"] == ["beach", "forest"]
    assert splits["train"].mask.all()
    assert info["group_names"] == ["boat/beach", "boat/forest", "dog/beach", "dog/forest"]
    out = export_subpopbench(splits, info, tmp_path / "sp.csv")
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["filename"].split("/")[2], r["a"]) for r in rows if r["split"] == "0"] == [
        ("beach", "0"), ("forest", "1"), ("beach", "0"), ("forest", "1")]


def test_lazy_folder_layout_matches_eager(tmp_path):
    make_coco_places(tmp_path)
    eager, _ = read_coco_on_places(tmp_path, size=8)
    lazy, info = read_coco_on_places(tmp_path, size=8, lazy=True)
    assert lazy["train"].lazy and info["sizes"]["train"][0] == (12, 12)
    for name in eager:
        assert torch.equal(lazy[name].x[:], eager[name].x) and torch.equal(lazy[name].mask[:], eager[name].mask)
        assert torch.equal(lazy[name].bias, eager[name].bias)


def _write_npz(root, name, n, y, g=None, **extra):
    rng = np.random.default_rng(n)
    arrays = {"images": rng.random((n, 3, 16, 16)).astype(np.float32), "y": np.asarray(y, dtype=np.int32)}
    if g is not None:
        arrays["g"] = np.asarray(g, dtype=np.int32)
    arrays.update(extra)
    np.savez(root / f"{name}.npz", **arrays)
    return arrays


def test_npz_layout_of_the_generator(tmp_path):
    masks = np.zeros((6, 16, 16), dtype=np.float32)
    masks[:, 4:12, 4:12] = 1.0
    images = np.random.default_rng(0).random((6, 3, 16, 16)).astype(np.float32)
    images[0] = 0.25
    tr = _write_npz(tmp_path, "train", 6, [0, 0, 1, 1, 2, 2], [0, 1, 0, 0, 1, 0], masks=masks, images=images)
    _write_npz(tmp_path, "validtest", 3, [0, 1, 2], [0, 0, 1])
    _write_npz(tmp_path, "oodtest", 3, [2, 1, 0])                       # the generator writes no g here
    _write_npz(tmp_path, "anotest", 2, [0, 0])                          # not read
    splits, info = read_coco_on_places(tmp_path, size=8)
    assert list(splits) == ["train", "val", "ood"]
    assert info["classes"] == ["0", "1", "2"] and info["place_names"] == ["biased", "unbiased"]
    assert splits["train"].bias.tolist() == [0, 1, 2, 2, 5, 4]           # 2*y + g
    assert splits["ood"].bias.tolist() == [-1, -1, -1]
    assert info["attributes"]["train"] == [0, 1, 0, 0, 1, 0]
    assert info["files"]["val"] == ["validtest.npz#0", "validtest.npz#1", "validtest.npz#2"]
    assert splits["train"].x.shape == (6, 3, 8, 8)
    assert torch.allclose(splits["train"].x[0], torch.full((3, 8, 8), 0.25))    # a flat image stays flat
    assert splits["train"].mask[:, :, 2:6, 2:6].all() and not splits["train"].mask[:, :, :2].any()
    assert splits["val"].mask.all()
    same, _ = read_coco_on_places(tmp_path, size=16)                          # the generator's size: as is
    assert torch.equal(same["train"].x, torch.from_numpy(tr["images"]))


# ---- bad inputs -------------------------------------------------------------------


def test_missing_val_split(tmp_path):
    make_coco_places(tmp_path, layout={"train": ((0, 1), (0,), 1), "idtest": ((0, 1), (0,), 1)})
    with pytest.raises(DataError, match=r"split folder 'val' is missing or empty \(validtest/ or val/\)"):
        read_coco_on_places(tmp_path)


def test_two_folders_for_val(tmp_path):
    make_coco_places(tmp_path, layout={"train": ((0,), (0,), 1), "validtest": ((0,), (0,), 1),
                                       "val": ((0,), (0,), 1)})
    with pytest.raises(DataError, match=r"val and validtest are both split 'val'"):
        read_coco_on_places(tmp_path)


def test_image_outside_class_place_folder(tmp_path):
    make_coco_places(tmp_path)
    Image.fromarray(scene(0, 0)[0]).save(tmp_path / "train" / "0" / "stray.png")
    with pytest.raises(DataError, match=r"image .*train/0/stray\.png is not in a <split>/<class>/<place>/"):
        read_coco_on_places(tmp_path)


def test_corrupt_image(tmp_path):
    make_coco_places(tmp_path)
    (tmp_path / "train" / "1" / "0" / "4.png").write_bytes(b"not a png" * 5)
    with pytest.raises(DataError, match=r"cannot decode image file .*train/1/0/4\.png"):
        read_coco_on_places(tmp_path)


def test_missing_mask(tmp_path):
    make_coco_places(tmp_path)
    (tmp_path / "masks" / "validtest" / "2" / "1" / "17.png").unlink()
    with pytest.raises(DataError, match=r"mask file .*masks/validtest/2/1/17\.png is missing"):
        read_coco_on_places(tmp_path)


def test_mask_size_mismatch(tmp_path):
    make_coco_places(tmp_path)
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(tmp_path / "masks" / "train" / "0" / "1" / "2.png")
    with pytest.raises(DataError, match=r"mask file .*train/0/1/2\.png is 10x10 but image .*2\.png is 12x12"):
        read_coco_on_places(tmp_path)


def test_test_class_never_in_train(tmp_path):
    make_coco_places(tmp_path, layout={"train": ((0, 1), (0,), 1), "validtest": ((0, 1), (0,), 1),
                                       "idtest": ((0, 2), (0,), 1)})
    with pytest.raises(DataError, match=r"id image idtest/2/0/\d+\.png has label '2', which never occurs in train"):
        read_coco_on_places(tmp_path)


def test_the_generators_hdf5_files_read_like_their_npz_copies(tmp_path):
    """The generator writes <split>.h5py (images float32 (N, 3, 64, 64), y and g int32);
    read as written, they give exactly what the same arrays as .npz give."""
    h5py = pytest.importorskip("h5py")  # the optional extra teakit[h5]

    rng = np.random.default_rng(0)
    for ext in ("h5py", "npz"):
        (tmp_path / ext).mkdir()
    for name, n, g in (("train", 6, True), ("validtest", 3, True), ("oodtest", 3, False), ("anotest", 2, False)):
        arrays = {"images": rng.random((n, 3, 16, 16)).astype(np.float32),
                  "y": np.asarray([i % 3 for i in range(n)], dtype=np.int32)}
        if g:
            arrays["g"] = np.asarray([i % 2 for i in range(n)], dtype=np.int32)
        with h5py.File(tmp_path / "h5py" / f"{name}.h5py", "w") as f:
            for k, v in arrays.items():
                f.create_dataset(k, data=v)
        np.savez(tmp_path / "npz" / f"{name}.npz", **arrays)
    h5, info = read_coco_on_places(tmp_path / "h5py", size=8)
    npz, _ = read_coco_on_places(tmp_path / "npz", size=8)
    assert list(h5) == list(npz) == ["train", "val", "ood"]
    for split in h5:
        for field in ("x", "y", "mask", "bias"):
            assert torch.equal(getattr(h5[split], field), getattr(npz[split], field)), (split, field)
    assert info["files"]["val"][0] == "validtest.h5py#0"
    with pytest.raises(ValueError, match="--lazy needs the image-folder layout"):
        read_coco_on_places(tmp_path / "h5py", lazy=True)
    (tmp_path / "h5py" / "validtest.h5py").write_bytes(b"\x89HDF\r\n not really")
    with pytest.raises(DataError, match=r"validtest\.h5py: cannot read \.h5py"):
        read_coco_on_places(tmp_path / "h5py")


def test_hdf5_files_without_h5py_name_the_extra(tmp_path, monkeypatch):
    """h5py is optional (teakit[h5]): without it, a .h5py file is an error that says what to install."""
    import builtins

    real_import = builtins.__import__

    def no_h5py(name, *args, **kwargs):
        if name == "h5py" or name.startswith("h5py."):
            raise ModuleNotFoundError("No module named 'h5py'", name="h5py")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    monkeypatch.delitem(sys.modules, "h5py", raising=False)
    (tmp_path / "train.h5py").write_bytes(b"\x89HDF\r\n not read")
    with pytest.raises(ImportError, match=r"train\.h5py: .*needs h5py.*pip install 'teakit\[h5\]'"):
        read_coco_on_places(tmp_path)


def test_nothing_there(tmp_path):
    with pytest.raises(DataError, match=r"expected split folders train/<class>/<place>/<image>"):
        read_coco_on_places(tmp_path)


@pytest.mark.parametrize("case, message", [
    ("no_y", r"validtest\.npz: no array 'y'"),
    ("short_g", r"validtest\.npz: 'g' has 2 entries but 'images' has 3"),
    ("nan", r"validtest\.npz, image 1: NaN or Inf"),
    ("range", r"validtest\.npz, image 2: pixel values outside \[0, 1\]"),
    ("g_value", r"validtest\.npz, image 0: g must be 0 or 1"),
    ("shape", r"validtest\.npz: 'images' must have shape \(N, 3, H, W\)"),
    ("unseen", r"validtest\.npz, image 2: val image has label '3', which never occurs in train"),
])
def test_bad_npz(tmp_path, case, message):
    _write_npz(tmp_path, "train", 4, [0, 1, 2, 2], [0, 1, 0, 1])
    arrays = {"images": np.random.default_rng(0).random((3, 3, 16, 16)).astype(np.float32),
              "y": np.array([0, 1, 3 if case == "unseen" else 2]), "g": np.array([0, 1, 0])}
    if case == "no_y":
        del arrays["y"]
    elif case == "short_g":
        arrays["g"] = arrays["g"][:2]
    elif case == "nan":
        arrays["images"][1, 0, 3, 3] = np.nan
    elif case == "range":
        arrays["images"][2] *= 2
    elif case == "g_value":
        arrays["g"][0] = 7
    elif case == "shape":
        arrays["images"] = arrays["images"][:, :1]
    np.savez(tmp_path / "validtest.npz", **arrays)
    with pytest.raises(DataError, match=message):
        read_coco_on_places(tmp_path, size=8)


def test_npz_cannot_be_lazy(tmp_path):
    _write_npz(tmp_path, "train", 2, [0, 1])
    with pytest.raises(ValueError, match="--lazy needs the image-folder layout"):
        read_coco_on_places(tmp_path, lazy=True)
