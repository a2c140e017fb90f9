"""The teacher-heatmap cache: LRP-ε maps precomputed once, read back by TEA.

For N training images, K classes and a fixed grid of E ε values, the
teacher's heatmap of every (image, class, ε) is stored as float16 in one raw
memory-mapped file ``path/heatmaps.f16`` of shape (N, K, E, C, H, W), C-order,
little-endian, no header.  ``path/manifest.json`` describes it::

    {"format": "teakit-heatmap-cache", "version": 1, "file": "heatmaps.f16",
     "dtype": "float16", "layout": ["N", "K", "E", "C", "H", "W"],
     "shape": [N, K, E, C, H, W], "num_classes": K, "eps_values": [...],
     <the caller's manifest fields, e.g. teacher_hash, dataset_fingerprint>,
     "complete": true}

Building, possibly sharded over ``world_size`` processes writing disjoint
images (rank r computes images r, r + world_size, ...) into the same file:

1. every rank calls :func:`build_cache`; it first (atomically) writes the
   manifest with ``"complete": false`` — a cache is never readable while it is
   being rewritten — then fills its images and, after flushing, writes a
   marker ``shard-{r}-of-{world_size}.done.json``;
2. the caller synchronises the ranks (e.g. ``fabric.barrier()``);
3. rank 0 alone calls :func:`finalize_cache`, which checks every rank's marker
   and atomically rewrites the manifest with ``"complete": true``.

With ``world_size == 1`` :func:`build_cache` finalizes itself.  The data file
is created without truncation (``O_CREAT`` + ``ftruncate`` to the exact size),
so ranks starting in any order never destroy each other's work.

Reading: :meth:`HeatmapCache.open` refuses an incomplete cache or one whose
manifest differs from what the caller expects (teacher hash, dataset
fingerprint, ε grid, shape, ...), naming the field.  Values round-trip to
float16 precision; heatmaps outside the float16 range are refused at build
time rather than stored as inf.

Assumptions: ``heatmap_fn(x, target, eps)`` returns maps of the input's shape
(B, C, H, W) for a batch x (B, C, H, W), target a (B,) LongTensor and eps a
(B,) float32 tensor, on the images' device; the file system offers POSIX
``os.replace``/``fsync`` semantics and a shared directory for all ranks.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import atomic_write_bytes, read_json_object

FORMAT = "teakit-heatmap-cache"
VERSION = 1
DATA_FILE = "heatmaps.f16"
MANIFEST_FILE = "manifest.json"
LAYOUT = ["N", "K", "E", "C", "H", "W"]
_RESERVED = ("format", "version", "file", "dtype", "layout", "shape", "num_classes",
             "eps_values", "complete")
_REBUILD = ("rebuild it with teakit.teachers.cache.build_cache (then finalize_cache on rank 0 "
            "when sharded), into this directory or a fresh one")


def eps_grid(n: int = 4, low: float = 1e-2, high: float = 1e-1) -> list[float]:
    """``n`` ε values log-spaced from ``low`` to ``high`` (both included, exactly; n=1 gives [low])."""
    if n < 1:
        raise ValueError(f"eps_grid: n must be >= 1, got {n}")
    if not (0 < low <= high):
        raise ValueError(f"eps_grid: need 0 < low <= high, got low={low}, high={high}")
    grid = [float(v) for v in np.logspace(math.log10(low), math.log10(high), n)]
    grid[0] = float(low)  # exact endpoints, not 10**log10(x)
    if n > 1:
        grid[-1] = float(high)
    return grid


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _jsonable(obj: Any) -> Any:
    """Tensors, numpy values, tuples and torch.Size -> plain JSON types."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    return obj


def _same(a: Any, b: Any) -> bool:
    """Equality of JSON values, floats compared to 1e-9 relative tolerance."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _atomic_write_json(path: Path, obj: dict, tag: str = "") -> None:
    data = (json.dumps(obj, indent=1, allow_nan=False) + "\n").encode()
    atomic_write_bytes(path, data, tag=tag)


def _read_json(path: Path) -> dict:
    return read_json_object(path, "heatmap cache", _REBUILD)


def _marker(path: Path, rank: int, world_size: int) -> Path:
    return path / f"shard-{rank}-of-{world_size}.done.json"


def _nbytes(shape: list[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) * 2


# --------------------------------------------------------------------------- #
# building
# --------------------------------------------------------------------------- #
HeatmapFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def build_cache(path: str | os.PathLike, heatmap_fn: HeatmapFn,
                images: torch.Tensor, num_classes: int, eps_values: list[float], manifest: dict,
                batch_size: int = 64, rank: int = 0, world_size: int = 1,
                progress: bool = True) -> Path:
    """Compute this rank's share of the cache into ``path`` (see the module docstring).

    ``images`` is the whole training set (N, C, H, W), identical on every rank;
    each call of ``heatmap_fn`` gets ``batch_size`` (image, class, ε) triples.
    Returns ``path``.  With ``world_size > 1`` the cache is complete only after
    all ranks returned and rank 0 called :func:`finalize_cache`.
    """
    path = Path(path)
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"build_cache({path}): images must be a (N, C, H, W) tensor, got {got}")
    if num_classes < 1:
        raise ValueError(f"build_cache({path}): num_classes must be >= 1, got {num_classes}")
    eps_list = [float(e) for e in _jsonable(eps_values)]
    if not eps_list or any(not math.isfinite(e) or e < 0 for e in eps_list):
        raise ValueError(f"build_cache({path}): eps_values must be a non-empty list of finite "
                         f"values >= 0, got {eps_list}")
    if batch_size < 1:
        raise ValueError(f"build_cache({path}): batch_size must be >= 1, got {batch_size}")
    if world_size < 1 or not (0 <= rank < world_size):
        raise ValueError(f"build_cache({path}): need 0 <= rank < world_size, got rank={rank}, "
                         f"world_size={world_size}")

    N, C, H, W = images.shape
    K, E = int(num_classes), len(eps_list)
    shape = [int(N), K, E, int(C), int(H), int(W)]
    info = {"format": FORMAT, "version": VERSION, "file": DATA_FILE, "dtype": "float16",
            "layout": LAYOUT, "shape": shape, "num_classes": K, "eps_values": eps_list}
    caller = _jsonable(dict(manifest))
    for key, value in caller.items():
        if key == "complete" or (key in info and not _same(value, info[key])):
            raise ValueError(f"build_cache({path}): manifest field {key!r} is reserved "
                             f"(the cache sets it to {info.get(key, 'true when finished')!r}, "
                             f"manifest gives {value!r})")
    record = {**caller, **info, "complete": False}
    try:
        json.dumps(record, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"build_cache({path}): manifest must be plain JSON: {e}") from e

    path.mkdir(parents=True, exist_ok=True)
    marker = _marker(path, rank, world_size)
    marker.unlink(missing_ok=True)
    # invalidate first: while data is rewritten the cache must not look complete
    _atomic_write_json(path / MANIFEST_FILE, record, tag=f".rank{rank}")

    data_path = path / DATA_FILE
    nbytes = _nbytes(shape)
    fd = os.open(data_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size != nbytes:
            os.ftruncate(fd, nbytes)  # never truncates below other ranks' data of this shape
    finally:
        os.close(fd)

    mine = np.arange(rank, N, world_size, dtype=np.int64)
    total = len(mine) * K * E
    device = images.device
    eps_t = torch.tensor(eps_list, dtype=torch.float32)
    if total > 0:
        mm = np.memmap(data_path, dtype="<f2", mode="r+", shape=tuple(shape))
        bar = tqdm(total=total, unit="map", disable=not progress,
                   desc=f"teacher heatmaps (rank {rank}/{world_size})")
        try:
            for start in range(0, total, batch_size):
                t = np.arange(start, min(start + batch_size, total), dtype=np.int64)
                n_idx, k_idx, e_idx = mine[t // (K * E)], (t // E) % K, t % E
                x = images[torch.from_numpy(n_idx).to(device)]
                target = torch.from_numpy(k_idx).to(device)
                eps = eps_t[torch.from_numpy(e_idx)].to(device)
                out = heatmap_fn(x, target, eps)
                if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(x.shape):
                    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                    raise ValueError(f"build_cache({path}): heatmap_fn returned {got}, expected "
                                     f"the input's shape {tuple(x.shape)}")
                half = out.detach().to(torch.float16)
                if not bool(torch.isfinite(half).all()):
                    raise ValueError(f"build_cache({path}): heatmap_fn returned non-finite values "
                                     "or values beyond the float16 range (|x| > 65504); rescale "
                                     "the heatmaps before caching")
                mm[n_idx, k_idx, e_idx] = half.cpu().numpy()
                bar.update(len(t))
            mm.flush()
        finally:
            bar.close()
            del mm
    # our share is on disk: record it for finalize_cache
    _atomic_write_json(marker, {"rank": rank, "world_size": world_size, "build": record})
    if world_size == 1:
        finalize_cache(path, world_size=1)
    return path


def finalize_cache(path: str | os.PathLike, world_size: int = 1) -> dict:
    """Mark a cache complete once every rank's share is on disk; call on rank 0 only.

    Call it after all ranks returned from :func:`build_cache` (synchronise
    first).  Checks each rank's ``shard-{r}-of-{world_size}.done.json`` marker
    against the manifest, then atomically writes ``"complete": true`` and
    removes the markers.  Returns the final manifest.
    """
    path = Path(path)
    manifest_path = path / MANIFEST_FILE
    record = _read_json(manifest_path)
    markers = [_marker(path, r, world_size) for r in range(world_size)]
    if record.get("complete") is True and not any(m.is_file() for m in markers):
        return record  # already finalized
    build = {**record, "complete": False}
    missing, stale = [], []
    for r, m in enumerate(markers):
        if not m.is_file():
            missing.append(r)
            continue
        done = _read_json(m)
        if not _same(done.get("build"), build):
            stale.append(r)
    if missing or stale:
        raise ValueError(f"finalize_cache({path}): ranks {missing} have not finished"
                         + (f" and ranks {stale} wrote a different build" if stale else "")
                         + f" (world_size={world_size}); synchronise all ranks after build_cache "
                         "before finalizing, or rebuild")
    data_path = path / DATA_FILE
    size = data_path.stat().st_size if data_path.is_file() else None
    if size != _nbytes(record["shape"]):
        raise ValueError(f"finalize_cache({path}): {data_path} has {size} bytes, expected "
                         f"{_nbytes(record['shape'])} for shape {record['shape']}; {_REBUILD}")
    final = {**record, "complete": True}
    _atomic_write_json(manifest_path, final)
    for m in markers:
        m.unlink(missing_ok=True)
    return final


# --------------------------------------------------------------------------- #
# reading
# --------------------------------------------------------------------------- #
class HeatmapCache:
    """Read-only view of a finished cache; open it with :meth:`HeatmapCache.open`.

    Picklable (for DataLoader workers): the memory map is reopened lazily.
    """

    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest
        self.shape = tuple(int(s) for s in manifest["shape"])
        self.num_classes = int(manifest["num_classes"])
        self.eps_values = torch.tensor(manifest["eps_values"], dtype=torch.float32)
        self._mm: np.memmap | None = None

    @classmethod
    def open(cls, path: str | os.PathLike, expected: dict) -> "HeatmapCache":
        """Open ``path`` read-only, refusing an incomplete or mismatched cache.

        Every key of ``expected`` (e.g. ``teacher_hash``, ``dataset_fingerprint``,
        ``eps_values``, ``shape``) must equal the manifest's value (floats to
        1e-9 relative); otherwise ValueError names the field, both values and
        how to rebuild.
        """
        path = Path(path)
        manifest_path = path / MANIFEST_FILE
        manifest = _read_json(manifest_path)
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise ValueError(f"heatmap cache {manifest_path}: format {manifest.get('format')!r} "
                             f"version {manifest.get('version')!r}, expected {FORMAT!r} version "
                             f"{VERSION}; {_REBUILD}")
        if manifest.get("complete") is not True:
            raise ValueError(f"heatmap cache {path} is incomplete (its build was interrupted, "
                             f"is still running, or was never finalized: {manifest_path} lacks "
                             f"\"complete\": true); {_REBUILD}")
        for key, want in _jsonable(dict(expected)).items():
            if key not in manifest:
                raise ValueError(f"heatmap cache {path} does not match: field {key!r} expected "
                                 f"{want!r}, but {manifest_path} has no such field; {_REBUILD}")
            if not _same(want, manifest[key]):
                raise ValueError(f"heatmap cache {path} does not match: field {key!r} expected "
                                 f"{want!r}, found {manifest[key]!r}; {_REBUILD}")
        for key in ("shape", "num_classes", "eps_values"):
            if key not in manifest:
                raise ValueError(f"heatmap cache {manifest_path} lacks the field {key!r}; {_REBUILD}")
        data_path = path / manifest.get("file", DATA_FILE)
        if not data_path.is_file():
            raise FileNotFoundError(f"heatmap cache: {data_path} does not exist; {_REBUILD}")
        want_bytes = _nbytes(manifest["shape"])
        if data_path.stat().st_size != want_bytes:
            raise ValueError(f"heatmap cache: {data_path} has {data_path.stat().st_size} bytes, "
                             f"expected {want_bytes} for shape {manifest['shape']}; {_REBUILD}")
        return cls(path, manifest)

    def _map(self) -> np.memmap:
        if self._mm is None:
            self._mm = np.memmap(self.path / self.manifest.get("file", DATA_FILE), dtype="<f2",
                                 mode="r", shape=self.shape)
        return self._mm

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_mm"] = None
        return state

    def __len__(self) -> int:
        return self.shape[0]

    def get(self, indices: torch.Tensor, classes: torch.Tensor, eps_index: torch.Tensor) -> torch.Tensor:
        """Heatmaps of images ``indices`` for ``classes`` at ε ``eps_values[eps_index]``.

        All three are (B,) integer tensors; returns a float32 CPU tensor (B, C, H, W).
        """
        arrays = []
        for what, t, bound in (("indices", indices, self.shape[0]), ("classes", classes, self.shape[1]),
                               ("eps_index", eps_index, self.shape[2])):
            a = torch.as_tensor(t).detach().cpu()
            if a.dim() != 1 or a.dtype.is_floating_point or a.dtype.is_complex or a.dtype == torch.bool:
                raise ValueError(f"HeatmapCache.get: {what} must be a 1-D integer tensor, got "
                                 f"{a.dtype} of shape {tuple(a.shape)}")
            if a.numel() and (int(a.min()) < 0 or int(a.max()) >= bound):
                raise IndexError(f"HeatmapCache.get: {what} out of range [0, {bound}) for cache "
                                 f"{self.path} (min {int(a.min())}, max {int(a.max())})")
            arrays.append(a.to(torch.int64).numpy())
        if not (len(arrays[0]) == len(arrays[1]) == len(arrays[2])):
            raise ValueError(f"HeatmapCache.get: indices, classes and eps_index must have the same "
                             f"length, got {len(arrays[0])}, {len(arrays[1])}, {len(arrays[2])}")
        out = np.ascontiguousarray(self._map()[arrays[0], arrays[1], arrays[2]])
        return torch.from_numpy(out).to(torch.float32)

    def __repr__(self) -> str:
        return (f"HeatmapCache({str(self.path)!r}, shape={self.shape}, "
                f"eps_values={self.eps_values.tolist()})")
