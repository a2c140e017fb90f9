"""Decoding one image (and its mask) file into arrays, shared by the readers and
lazy loading.

``load_image`` gives a ``(3, size, size)`` float32 array in [0, 1]: bilinear
resize; with ``color="rgb"`` (the default) grayscale / palette / RGBA images
become RGB (a grayscale image repeated over the three channels), with
``color="gray"`` every image is first reduced to its luminance (PIL's ``L``,
ITU-R 601-2) and then repeated, so colour never differs between files.
16-bit and float images are scaled to [0, 1].  ``load_mask`` gives a
``(1, size, size)`` bool array (nearest-neighbour resize; foreground = value >
127; no mask = all True).  Every problem raises :class:`DataError` naming
``where`` (the CSV file and row, or the dataset folder) and the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .names import COLOR_MODES

_NUMERIC_MODES = ("F", "I", "I;16", "I;16B", "I;16L", "I;16N")


class DataError(ValueError):
    """A dataset on disk is malformed; the message names the file (and row)."""


def check_color(color: str) -> str:
    if color not in COLOR_MODES:
        raise ValueError(f"color={color!r}; expected one of {', '.join(COLOR_MODES)}")
    return color


def decode_file(path: Path, what: str, where: str) -> Image.Image:
    """Open and fully decode ``path`` with PIL, or raise ``DataError``."""
    if not path.is_file():
        raise DataError(f"{where}: {what} file {path} is missing")
    try:
        img = Image.open(path)
        img.load()
    except Exception as exc:  # PIL raises many types for corrupt / unreadable files
        raise DataError(f"{where}: cannot decode {what} file {path} ({type(exc).__name__}: {exc})") from exc
    return img


def to_rgb_float(img: Image.Image, size: int, where: str, path: Path, validate: bool = True,
                 color: str = "rgb") -> np.ndarray:
    """``img`` as a (3, size, size) float32 array in [0, 1]."""
    if img.mode in _NUMERIC_MODES:
        arr = np.asarray(img, dtype=np.float32)
        if validate and not np.isfinite(arr).all():
            raise DataError(f"{where}: image file {path} holds NaN or Inf pixel values")
        arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)
        if img.mode != "F":  # integer images: 8- or 16-bit range
            arr = arr / (65535.0 if arr.max(initial=0.0) > 255 else 255.0)
        small = Image.fromarray(np.clip(arr, 0.0, 1.0).astype(np.float32)).resize((size, size), Image.BILINEAR)
        out = np.repeat(np.asarray(small, dtype=np.float32)[None], 3, axis=0)
    elif color == "gray":
        gray = img.convert("RGB").convert("L").resize((size, size), Image.BILINEAR)
        out = np.repeat(np.asarray(gray, dtype=np.float32)[None] / 255.0, 3, axis=0)
    else:
        rgb = img.convert("RGB").resize((size, size), Image.BILINEAR)
        out = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def mask_to_bool(m: Image.Image, size: int) -> np.ndarray:
    """A decoded mask as a (1, size, size) bool array (foreground = value > 127)."""
    if m.mode in _NUMERIC_MODES:
        m = Image.fromarray(np.asarray(m, dtype=np.float32))
    else:
        m = m.convert("L")
    return (np.asarray(m.resize((size, size), Image.NEAREST)) > 127)[None]


def load_image(path: Path, size: int, where: str, validate: bool = True, color: str = "rgb"
               ) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode one image: ``(x (3, size, size) float32, original (width, height))``."""
    img = decode_file(path, "image", where)
    return to_rgb_float(img, size, where, path, validate, color), img.size


def load_mask(path: Path | None, size: int, where: str) -> np.ndarray:
    """Decode one mask (``None``: all foreground) into a (1, size, size) bool array."""
    if path is None:
        return np.ones((1, size, size), dtype=bool)
    return mask_to_bool(decode_file(path, "mask", where), size)


def load_item(image_path: Path, mask_path: Path | None, size: int, where: str, validate: bool = True,
              color: str = "rgb") -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Decode one image and its mask into ``(x, mask, original (width, height))``;
    with ``validate`` a mask of another size than its image is refused."""
    img = decode_file(image_path, "image", where)
    x = to_rgb_float(img, size, where, image_path, validate, color)
    if mask_path is None:
        return x, load_mask(None, size, where), img.size
    m = decode_file(mask_path, "mask", where)
    if validate and m.size != img.size:
        raise DataError(f"{where}: mask file {mask_path} is {m.size[0]}x{m.size[1]} but image "
                        f"{image_path} is {img.size[0]}x{img.size[1]}")
    return x, mask_to_bool(m, size), img.size
