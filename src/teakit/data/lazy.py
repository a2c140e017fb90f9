"""Lazy image tensors: rows are decoded from their files only when indexed.

A :class:`LazyImages` stands where an ``ImageSet`` holds a tensor (``x`` or
``mask``) for datasets too large to keep in memory (``--lazy``).  Indexing it
(``x[i]``, ``x[a:b]``, ``x[index_tensor]``, ``x[bool_tensor]``) decodes those
rows now -- with the same decoding as the eager readers -- and returns a real
tensor; ``take`` is the lazy subset.  A file that went missing or bad after
the dataset was validated raises :class:`~teakit.data.decode.DataError` naming
the file (and its CSV row) at the batch that needs it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .decode import load_image, load_mask


@dataclass(frozen=True)
class FileRows:
    """The image and mask files of one split in row order, ``where`` (CSV file and row,
    for messages) per row, and how to decode them."""

    images: tuple[Path, ...]
    masks: tuple[Path | None, ...]
    wheres: tuple[str, ...]
    size: int
    color: str = "rgb"


class LazyImages:
    """A read-only ``(N, 3, size, size)`` float32 (``kind="image"``) or ``(N, 1, size,
    size)`` bool (``kind="mask"``) stand-in for a tensor.  ``norm = (mean, std)``
    (per channel) is applied to decoded images."""

    def __init__(self, files: FileRows, kind: str, index=None, norm=None):
        if kind not in ("image", "mask"):
            raise ValueError(f"kind={kind!r}; expected 'image' or 'mask'")
        self.files, self.kind, self.norm = files, kind, norm
        self.index = np.arange(len(files.images)) if index is None else np.asarray(index, dtype=np.int64)

    @property
    def shape(self) -> torch.Size:
        s = self.files.size
        return torch.Size((len(self.index), 3 if self.kind == "image" else 1, s, s))

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32 if self.kind == "image" else torch.bool

    device = torch.device("cpu")
    ndim = 4

    def dim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"LazyImages(kind={self.kind!r}, shape={tuple(self.shape)})"

    def _positions(self, idx) -> np.ndarray:
        """``idx`` (slice, integers, or booleans of length N) as positions into ``self.index``."""
        n = len(self)
        if isinstance(idx, slice):
            return np.arange(n)[idx]
        arr = idx.detach().cpu().numpy() if isinstance(idx, torch.Tensor) else np.asarray(idx)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise IndexError(f"boolean index of shape {arr.shape} for {n} rows")
            return np.flatnonzero(arr)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise IndexError(f"index must hold integers or booleans, got {arr.dtype}")
        arr = arr.astype(np.int64).reshape(-1)
        if arr.size and (arr.min() < -n or arr.max() >= n):
            raise IndexError(f"index out of range for {n} rows")
        return np.where(arr < 0, arr + n, arr)

    def _decode(self, row: int) -> np.ndarray:
        f = self.files
        if self.kind == "mask":
            return load_mask(f.masks[row], f.size, f.wheres[row])
        x, _ = load_image(f.images[row], f.size, f.wheres[row], validate=True, color=f.color)
        if self.norm is not None:
            mean, std = (np.asarray(v, dtype=np.float32)[:, None, None] for v in self.norm)
            x = (x - mean) / std
        return x

    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, (int, np.integer)):
            return self[[int(idx)]][0]
        rows = self.index[self._positions(idx)]
        if len(rows) == 0:
            return torch.empty((0, *self.shape[1:]), dtype=self.dtype)
        return torch.from_numpy(np.stack([self._decode(int(r)) for r in rows]))

    def take(self, idx) -> "LazyImages":
        """The rows selected by ``idx``, still lazy."""
        return LazyImages(self.files, self.kind, self.index[self._positions(idx)], self.norm)

    def with_norm(self, mean, std) -> "LazyImages":
        return LazyImages(self.files, self.kind, self.index, (tuple(mean), tuple(std)))

    def digest(self, h: "hashlib._Hash") -> None:
        """Feed the identity of the rows (path, byte size, modification time), the
        decoding settings and ``norm`` into ``h``: what ``ImageSet.fingerprint`` hashes
        instead of pixels."""
        f = self.files
        h.update(f"lazy:{self.kind}:{f.size}:{f.color}:{self.norm};".encode())
        for r in self.index:
            path = f.images[r] if self.kind == "image" else f.masks[r]
            try:
                st = path.stat() if path is not None else None
                stamp = f"{st.st_size}:{st.st_mtime_ns}" if st else "-"
            except OSError:
                stamp = "missing"
            h.update(f"{path}|{stamp};".encode())
