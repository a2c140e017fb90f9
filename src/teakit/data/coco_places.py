"""``coco-on-places``: COCO objects pasted on Places backgrounds (Ahmed et al., ICLR 2021).

The public generator (``coco/data/data_makers/coco_places.py`` of
github.com/Faruk-Ahmed/predictive_group_invariance) writes HDF5 files
``train``, ``validtest``, ``valoodtest``, ``valsgtest``, ``idtest``,
``oodtest``, ``sgtest`` and ``anotest`` (``.h5py``), each with ``images``
(N, 3, 64, 64) float32 in [0, 1], ``y`` (class id) and, for ``train``,
``validtest``, ``valoodtest``, ``valsgtest`` and ``idtest``, ``g`` (0: the
class's own biased place, 1: an unbiased place).  It computes each object's
mask but does not save it, and it records no place id.  Two layouts are read:

* **Image folders** (preferred; lazy reading works):
  ``ROOT/<split>/<class>/<place>/<image>`` -- class and place (background)
  are the folder names, integer ids or names (integers are the ids, names are
  numbered in sorted order); optional masks ``ROOT/masks/<split>/<class>/
  <place>/<image stem>.png`` (when ``ROOT/masks`` exists every image needs one).
* **Arrays**: the generator's own ``ROOT/<split>.h5py`` files as written (read
  with h5py), or the same arrays as ``ROOT/<split>.npz``: keys ``images``
  (N, 3, H, W; float in [0, 1] or uint8), ``y``, optional ``g`` and optional
  ``masks`` (N, H, W), (N, 1, H, W) or (N, 3, H, W) (foreground > 0.5, or > 127
  for uint8).  Where both exist for a split, ``.h5py`` is read.  The place is
  ``g`` (names ``biased`` / ``unbiased``); a file without ``g`` has none (-1).

Split names: ``train``; ``validtest`` (or ``val``) -> ``val``; ``idtest`` ->
``id``; ``oodtest`` -> ``ood``; ``sgtest`` -> ``sg`` (another class's
place); ``valoodtest`` -> ``val_ood``; ``valsgtest`` -> ``val_sg``; any other
name is kept.  ``anotest`` (an anomaly class, no label) is not read.  ``train``
and ``val`` are required.  Group = (class, place): ``bias = y * P + place`` with
``P`` places (``info["group_names"]``); ``info["attributes"]`` holds the place
(SubpopBench's ``a``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .decode import DataError, check_color
from .imageset import ImageSet
from .readers import _finish, _Row, name_index

SPLIT_NAMES = {"train": "train", "validtest": "val", "val": "val", "idtest": "id", "oodtest": "ood",
               "sgtest": "sg", "valoodtest": "val_ood", "valsgtest": "val_sg"}
SKIPPED = ("anotest", "masks")
GENERATOR_FILES = ("train", "validtest", "valoodtest", "valsgtest", "idtest", "oodtest", "sgtest")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # PIL's "L" weights


def _split_name(folder: str, root: Path, seen: dict) -> str:
    name = SPLIT_NAMES.get(folder, folder)
    if name in seen:
        raise DataError(f"{root}: {seen[name]} and {folder} are both split {name!r}; keep one")
    seen[name] = folder
    return name


def _group_info(classes: list[str], places: list[str]) -> dict:
    return {"place_names": places, "group_names": [f"{c}/{p}" for c in classes for p in places]}


def _folder_rows(root: Path) -> tuple[list[_Row], list[str]]:
    """One row per image file of ``root/<split>/<class>/<place>/``, and the place names."""
    masks = root / "masks"
    rows, place_texts, seen = [], [], {}
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in SKIPPED):
        split = _split_name(split_dir.name, root, seen)
        for path in sorted(split_dir.rglob("*")):
            if path.is_dir() or path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            parts = path.relative_to(split_dir).parts
            if len(parts) != 3:
                raise DataError(f"{root}: image {path} is not in a <split>/<class>/<place>/ folder")
            rel = path.relative_to(root)
            mask = masks / rel.with_suffix(".png") if masks.is_dir() else None
            rows.append(_Row(row=None, filename=rel.as_posix(), label=parts[0], split=split, mask=mask))
            place_texts.append(parts[1])
    if not rows:
        raise DataError(f"{root}: no images found in <split>/<class>/<place>/ folders")
    places, names = name_index(place_texts)
    for r, place in zip(rows, places):
        if place < 0:
            raise DataError(f"{root}: place {place} of {r.filename} is negative")
        r.attribute = place
    return rows, names


def _read_folders(root: Path, size: int, classes, validate: bool, lazy: bool, color: str):
    rows, places = _folder_rows(root)
    order = list(dict.fromkeys(SPLIT_NAMES.values()))
    rows.sort(key=lambda r: (order.index(r.split) if r.split in order else len(order), r.split))
    for split in ("train", "val"):
        if not any(r.split == split for r in rows):
            raise DataError(f"{root}: split folder {split!r} is missing or empty"
                            + (" (validtest/ or val/)" if split == "val" else ""))
    P = len(places)
    splits, info = _finish(root, root, rows, classes, size, validate, bias_of=lambda r: r.y * P + r.attribute,
                           required_splits=("train", "val"), lazy=lazy, color=color)
    info.update(_group_info(info["classes"], places))
    return splits, info


class _ArrayFile:
    """One split's arrays from ``.npz`` (numpy, no pickles) or ``.h5py`` (h5py), read-only:
    ``files`` (the keys), ``key in f``, ``f[key]`` (a numpy array); a context manager."""

    def __init__(self, path: Path):
        self.path = path
        try:
            if path.suffix == ".h5py":
                try:
                    import h5py
                except ImportError as exc:  # an optional dependency: the extra teakit[h5]
                    raise ImportError(f"{path}: reading the generator's .h5py files needs h5py, an optional "
                                      "dependency: pip install 'teakit[h5]' (or convert the files to .npz)",
                                      name="h5py") from exc
                self._f = h5py.File(path, "r")
                self.files = list(self._f.keys())
            else:
                self._f = np.load(path, allow_pickle=False)
                self.files = list(self._f.files)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read {path.suffix} ({exc})") from exc

    def __contains__(self, key: str) -> bool:
        return key in self.files

    def __getitem__(self, key: str) -> np.ndarray:
        return np.asarray(self._f[key][()])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def _array(data, key: str, path: Path, n: int | None = None) -> np.ndarray:
    if key not in data:
        raise DataError(f"{path}: no array {key!r} (found: {', '.join(data.files) or 'none'})")
    arr = np.asarray(data[key])
    if n is not None and len(arr) != n:
        raise DataError(f"{path}: {key!r} has {len(arr)} entries but 'images' has {n}")
    return arr


def _ints(arr: np.ndarray, key: str, path: Path, low: int) -> np.ndarray:
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or
                             (np.isfinite(arr).all() and (arr == np.round(arr)).all())):
        raise DataError(f"{path}: {key!r} must be a 1-D array of integers, got {arr.dtype} {arr.shape}")
    arr = arr.astype(np.int64)
    bad = np.flatnonzero(arr < low)
    if bad.size:
        raise DataError(f"{path}, image {bad[0]}: {key} {arr[bad[0]]} is below {low}")
    return arr


def _images(arr: np.ndarray, path: Path, size: int, color: str) -> torch.Tensor:
    """(N, 3, H, W) float in [0, 1] or uint8 -> (N, 3, size, size) float32 in [0, 1]."""
    if arr.ndim != 4 or arr.shape[1] != 3:
        raise DataError(f"{path}: 'images' must have shape (N, 3, H, W), got {arr.shape}")
    if arr.dtype == np.uint8:
        x = arr.astype(np.float32) / 255.0
    else:
        x = arr.astype(np.float32)
        bad = np.flatnonzero(~np.isfinite(x).reshape(len(x), -1).all(1))
        if bad.size:
            raise DataError(f"{path}, image {bad[0]}: NaN or Inf pixel values")
        bad = np.flatnonzero((x.reshape(len(x), -1).min(1) < 0) | (x.reshape(len(x), -1).max(1) > 1))
        if bad.size:
            raise DataError(f"{path}, image {bad[0]}: pixel values outside [0, 1]")
    if color == "gray":
        x = np.repeat(np.tensordot(_LUMA, x, axes=([0], [1]))[:, None], 3, axis=1)
    t = torch.from_numpy(np.ascontiguousarray(x))
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return t.clamp(0.0, 1.0).contiguous()


def _masks(arr: np.ndarray, path: Path, n: int, hw: tuple, size: int) -> torch.Tensor:
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3) or arr.shape[2:] != hw:
        raise DataError(f"{path}: 'masks' must have shape (N, H, W), (N, 1, H, W) or (N, 3, H, W) with the "
                        f"images' H, W = {hw}, got {arr.shape}")
    fg = arr[:, :1] > (127 if arr.dtype == np.uint8 else 0.5)
    t = torch.from_numpy(np.ascontiguousarray(fg)).float()
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="nearest")
    return t > 0.5


def _read_arrays(root: Path, size: int, classes, validate: bool, color: str):
    splits, info, seen, paths = {}, {"files": {}, "sizes": {}, "attributes": {}}, {}, {}
    stems = {p.stem for p in root.glob("*.npz")} | {p.stem for p in root.glob("*.h5py")}
    for stem in GENERATOR_FILES + tuple(sorted(stems - set(GENERATOR_FILES))):
        path = next((p for p in (root / f"{stem}.h5py", root / f"{stem}.npz") if p.is_file()), None)
        if stem in SKIPPED or path is None:
            continue
        with _ArrayFile(path) as data:
            images = _array(data, "images", path)
            n = len(images)
            y = _ints(_array(data, "y", path, n), "y", path, 0)
            g = _ints(_array(data, "g", path, n), "g", path, 0) if "g" in data.files else np.full(n, -1)
            if (g > 1).any():
                raise DataError(f"{path}, image {int(np.flatnonzero(g > 1)[0])}: g must be 0 or 1")
            hw = tuple(images.shape[2:]) if images.ndim == 4 else ()
            x = _images(images, path, size, color)
            mask = (_masks(data["masks"], path, n, hw, size) if "masks" in data
                    else torch.ones((n, 1, size, size), dtype=torch.bool))
        name = _split_name(stem, root, seen)
        paths[name] = path
        splits[name] = (torch.from_numpy(y), torch.from_numpy(g), x, mask)
        info["files"][name] = [f"{path.name}#{i}" for i in range(n)]
        info["sizes"][name] = [(hw[1], hw[0])] * n
        info["attributes"][name] = g.tolist()
    for split in ("train", "val"):
        if split not in splits or len(splits[split][0]) == 0:
            raise DataError(f"{root}: split {split!r} is missing or empty"
                            + (" (validtest or val .h5py/.npz)" if split == "val" else " (train.h5py or train.npz)"))
    K = 1 + max(int(t[0].max()) for t in splits.values() if len(t[0]))
    names = [str(c) for c in classes] if classes is not None else [str(k) for k in range(K)]
    if K > len(names):
        raise DataError(f"{root}: class id {K - 1} is not one of the classes {names}")
    if validate:
        seen_labels = set(splits["train"][0].tolist())
        for name, (y, *_rest) in splits.items():
            unseen = [i for i, v in enumerate(y.tolist()) if v not in seen_labels]
            if unseen:
                raise DataError(f"{paths[name]}, image {unseen[0]}: {name} image has label "
                                f"{names[int(y[unseen[0]])]!r}, which never occurs in train")
    out = {name: ImageSet(x=x, y=y, mask=mask, bias=torch.where(g >= 0, 2 * y + g, -1))
           for name, (y, g, x, mask) in splits.items()}
    info.update(classes=names, **_group_info(names, ["biased", "unbiased"]))
    return out, info


def read_coco_on_places(root, size: int = 64, classes=None, validate: bool = True, *, lazy: bool = False,
                        color: str = "rgb") -> tuple[dict[str, ImageSet], dict]:
    """Read COCO-on-Places from ``root`` in the image-folder or the array layout
    (``.h5py`` / ``.npz``, see the module docstring); returns ``(splits, info)``."""
    root = Path(root)
    check_color(color)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    if (root / "train.h5py").is_file() or (root / "train.npz").is_file():
        if lazy:
            raise ValueError(f"{root}: the array layout (.h5py/.npz) is read into memory; --lazy needs the "
                             "image-folder layout <split>/<class>/<place>/<image>")
        return _read_arrays(root, size, classes, validate, color)
    if (root / "train").is_dir():
        return _read_folders(root, size, classes, validate, lazy, color)
    raise DataError(f"{root}: expected split folders train/<class>/<place>/<image> (+ validtest/ or val/) "
                    "or the generator's arrays train.h5py (+ validtest.h5py), or the same as .npz")
