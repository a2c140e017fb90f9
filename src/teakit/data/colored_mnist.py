"""``colored-mnist``: Colored MNIST read from a local copy of the MNIST IDX files.

``read_colored_mnist(root)`` reads the four standard MNIST files
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each optionally
gzipped, ``.gz``), found directly in ``root`` or in torchvision's layout
``root/MNIST/raw/`` (the uncompressed file first, then ``.gz``; ``root``
before ``root/MNIST/raw``).  Nothing is ever downloaded.  The IDX format is
parsed here: a big-endian ``uint32`` magic number (2051 for images, 2049 for
labels), the item count (and for images the row / column counts), then
``uint8`` data; magic numbers, counts, data lengths and labels (0..9) are
checked and any problem raises :class:`~teakit.data.readers.DataError` naming
the file.

Each digit (values 0..255) is scaled to [0, 1], resized to ``size`` x ``size``
by bilinear interpolation (``align_corners=False``; not resampled when it
already has that size), and divided by its own maximum -- the same intensity
rule as ``colored-digits``.  The colouring (palette, ``bias``, ``ood`` /
``swapped`` / ``train_debiased`` colours, mask ``a > 0.5``, bias attribute,
random streams) is exactly that of ``colored-digits``
(:func:`teakit.data.colored_digits.colour_splits`).

Splits: ``val`` is a seeded random part (``round(val_fraction * N)`` images,
default 1/12, i.e. 5,000 of 60,000) of the MNIST training set, ``train`` the
rest (both in file order); ``train_debiased`` is ``train`` in random colours;
``id``, ``ood`` and ``swapped`` are the MNIST test set (file order).
"""
from __future__ import annotations

import gzip
import numbers
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .colored_digits import _SPLIT, NUM_CLASSES, check_options, colour_splits, rng_for
from .imageset import ImageSet
from .readers import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CLASSES = tuple(str(k) for k in range(NUM_CLASSES))


def find_mnist_file(root, name: str) -> Path:
    """The path of MNIST file ``name`` under ``root`` (``root/name[.gz]`` or
    ``root/MNIST/raw/name[.gz]``); ``DataError`` listing the places looked at
    when there is none."""
    root = Path(root)
    candidates = [d / (name + ext) for d in (root, root / "MNIST" / "raw") for ext in ("", ".gz")]
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(f"{root / name}: MNIST file {name} not found; looked for "
                    + ", ".join(str(p) for p in candidates))


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: cannot read MNIST file ({err})") from err


def read_idx(path, magic: int) -> np.ndarray:
    """Parse the IDX file ``path`` (optionally gzipped) with the expected
    ``magic`` (2051: images -> (N, rows, cols) uint8; 2049: labels -> (N,)
    uint8); ``DataError`` naming the file on any mismatch."""
    path = Path(path)
    data = _read_bytes(path)
    ndim = {IMAGES_MAGIC: 3, LABELS_MAGIC: 1}[magic]
    header = 4 * (1 + ndim)
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes, expected at least {header})")
    found = struct.unpack(">I", data[:4])[0]
    if found != magic:
        raise DataError(f"{path}: bad IDX magic number {found}, expected {magic} "
                        f"({'images' if magic == IMAGES_MAGIC else 'labels'})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if ndim == 3 and (shape[1] < 1 or shape[2] < 1):
        raise DataError(f"{path}: bad image size {shape[1]}x{shape[2]}")
    expected = int(np.prod(shape, dtype=np.int64))
    body = len(data) - header
    if body != expected:
        what = "truncated" if body < expected else "too long"
        raise DataError(f"{path}: {what} IDX data: {body} bytes after the header, expected {expected} "
                        f"for shape {tuple(shape)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _read_pair(root, part: str) -> tuple[np.ndarray, np.ndarray, Path]:
    img_path = find_mnist_file(root, FILES[f"{part}_images"])
    lab_path = find_mnist_file(root, FILES[f"{part}_labels"])
    images = read_idx(img_path, IMAGES_MAGIC)
    labels = read_idx(lab_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataError(f"{lab_path}: {len(labels)} labels for the {len(images)} images of {img_path}")
    if len(images) == 0:
        raise DataError(f"{img_path}: no images")
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise DataError(f"{lab_path}: label {int(labels.max())} out of range 0..{NUM_CLASSES - 1}")
    return images, labels.astype(np.int64), img_path


def mnist_intensities(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 digits (N, h, w) -> intensities (N, size, size) float32 in [0, 1],
    each rescaled so its maximum is 1 (an all-black digit stays 0)."""
    a = torch.from_numpy(images.astype(np.float32) / 255.0)
    if tuple(a.shape[1:]) != (size, size):
        a = F.interpolate(a[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
        a = a.clamp_(0.0, 1.0)
    peak = a.amax(dim=(1, 2), keepdim=True)
    a = a / torch.where(peak > 0, peak, torch.ones_like(peak))
    return a.contiguous()


def val_indices(n: int, seed: int, val_fraction: float) -> np.ndarray:
    """Sorted indices of the seeded validation part of ``n`` training images."""
    n_val = int(round(val_fraction * n))
    if not 0 < n_val < n:
        raise DataError(f"val_fraction={val_fraction} of {n} training images leaves an empty "
                        f"{'val' if n_val <= 0 else 'train'} split")
    return np.sort(rng_for(seed, _SPLIT).permutation(n)[:n_val])


def read_colored_mnist(root, size: int = 28, seed: int = 0, bias: float = 1.0,
                       val_fraction: float = 1 / 12) -> tuple[dict[str, ImageSet], dict]:
    """Read MNIST from ``root`` and colour it like ``colored-digits``.

    Returns ``(splits, info)``: ``splits`` has ``train``, ``val``,
    ``train_debiased``, ``id``, ``ood`` and ``swapped`` (see the module
    docstring); ``info`` has ``classes`` (``"0"``..``"9"``), ``files`` (per
    split, ``"<images file name>:<index>"`` per image), ``sizes`` (per split,
    the original ``(width, height)`` per image) and ``source_files`` (the four
    paths read).  Same ``seed`` -> bit-identical splits.
    """
    check_options(seed, size, bias)
    if (isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real)
            or not 0.0 < val_fraction < 1.0):
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    tr_img, tr_lab, tr_path = _read_pair(root, "train")
    te_img, te_lab, te_path = _read_pair(root, "test")

    val_idx = val_indices(len(tr_lab), seed, val_fraction)
    is_val = np.zeros(len(tr_lab), dtype=bool)
    is_val[val_idx] = True
    train_idx = np.flatnonzero(~is_val)
    test_idx = np.arange(len(te_lab))

    a_tr = mnist_intensities(tr_img, size)
    a_te = mnist_intensities(te_img, size)
    y_tr = torch.from_numpy(tr_lab)
    y_te = torch.from_numpy(te_lab)
    parts = {
        "train": (a_tr[torch.from_numpy(train_idx)], y_tr[torch.from_numpy(train_idx)]),
        "val": (a_tr[torch.from_numpy(val_idx)], y_tr[torch.from_numpy(val_idx)]),
        "test": (a_te, y_te),
    }
    splits = colour_splits(parts, seed, bias)

    sources = {"train": (tr_path, train_idx, tr_img), "val": (tr_path, val_idx, tr_img),
               "train_debiased": (tr_path, train_idx, tr_img)}
    for name in ("id", "ood", "swapped"):
        sources[name] = (te_path, test_idx, te_img)
    info: dict = {"classes": list(CLASSES), "files": {}, "sizes": {},
                  "source_files": {key: str(find_mnist_file(root, name)) for key, name in FILES.items()}}
    for name in splits:
        path, idx, img = sources[name]
        info["files"][name] = [f"{path.name}:{i}" for i in idx.tolist()]
        info["sizes"][name] = [(img.shape[2], img.shape[1])] * len(idx)
    return splits, info


__all__ = ["read_colored_mnist", "read_idx", "find_mnist_file", "mnist_intensities", "FILES",
           "IMAGES_MAGIC", "LABELS_MAGIC"]
