"""Safe, atomic, resumable checkpoints: safetensors + JSON, no pickle anywhere.

A checkpoint called ``name`` in ``directory`` is three files:

* ``{name}.json`` — the commit record, plain JSON: ``format``/``version``,
  ``epoch``, ``config``, ``extra``, the optimizer's ``param_groups`` and scalar
  state, the Python/numpy RNG states, the names of the two tensor files below
  and the SHA-256 of each.
* ``{name}.{gen}.safetensors`` — the model weights (``gen`` is a fresh random
  8-hex-digit token per save).
* ``{name}.{gen}.state.safetensors`` — optimizer state tensors (``exp_avg``,
  ``momentum_buffer``, ``step``, ...) and the torch CPU / CUDA RNG states.

Why the token: every file is written atomically (temp file in the same
directory, flush + fsync, ``os.replace``), and the JSON is replaced last, so it
is the single commit point.  Tensor files of a new save never overwrite the
ones the current JSON points to; only after the new JSON is in place are the
old generation's files (and any orphans of an earlier crash) deleted.  So a
run killed at any instant leaves either the old complete checkpoint or the new
complete one.  Always read checkpoints through :func:`load_checkpoint`, which
follows the JSON and checks the hashes.

Assumptions: one process writes a given ``directory/name`` at a time (in DDP,
rank 0 saves); JSON-able ``config``/``extra``; optimizer state values are
tensors, Python scalars/strings/None, or lists/tuples/dicts of those (true for
all ``torch.optim`` optimizers).  A tensor that shares storage with another or
is not contiguous is cloned before writing (safetensors refuses shared
tensors).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from .atomic import atomic_write_bytes, read_json_object

FORMAT = "teakit-checkpoint"
VERSION = 1
_MAX_LISTED = 20


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    ``optimizer_state`` is the optimizer ``state_dict()`` exactly as saved
    (``{"state": {int: {...}}, "param_groups": [...]}``) or None;
    ``rng_state`` is ``{"torch_cpu": Tensor, "cuda": [Tensor], "numpy": tuple,
    "python": tuple}`` or None.  Pass both to a live run with :func:`restore`.
    """

    model_state: dict[str, torch.Tensor]
    config: dict
    epoch: int
    extra: dict
    optimizer_state: dict | None = None
    rng_state: dict | None = None
    path: Path | None = field(default=None)


# --------------------------------------------------------------------------- #
# atomic file writing
# --------------------------------------------------------------------------- #
_atomic_write_bytes = atomic_write_bytes


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- #
# tensors <-> safetensors
# --------------------------------------------------------------------------- #
def _prepare_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detach, move to CPU, and clone whatever safetensors would refuse."""
    out: dict[str, torch.Tensor] = {}
    storages: dict[tuple[str, int], int] = {}
    for t in tensors.values():
        if isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.numel() > 0:
            key = (t.device.type, t.untyped_storage().data_ptr())
            storages[key] = storages.get(key, 0) + 1
    for k, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"state entry {k!r} is a {type(t).__name__}, not a tensor")
        t = t.detach()
        if t.device.type != "cpu":
            t = t.cpu().contiguous()  # a fresh copy: shares nothing
        else:
            shared = t.numel() > 0 and storages[("cpu", t.untyped_storage().data_ptr())] > 1
            partial = t.numel() > 0 and t.untyped_storage().nbytes() != t.numel() * t.element_size()
            if shared or partial or not t.is_contiguous():
                t = t.clone(memory_format=torch.contiguous_format)
        out[k] = t
    return out


def _tensor_file_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return _st_save(_prepare_tensors(tensors), metadata={"format": "pt"})


def _read_tensor_file(path: Path, expected_sha: str | None, map_location,
                      json_path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file missing: {path} (named in {json_path})")
    data = path.read_bytes()
    if expected_sha is not None and _sha256_bytes(data) != expected_sha:
        raise ValueError(f"checkpoint file {path} is corrupt: its SHA-256 does not match the "
                         f"one recorded in {json_path}")
    try:
        tensors = _st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise ValueError(f"checkpoint file {path} is not a valid safetensors file: {e}") from e
    dev = torch.device(map_location) if map_location is not None else torch.device("cpu")
    if dev.type != "cpu":
        tensors = {k: v.to(dev) for k, v in tensors.items()}
    return tensors


# --------------------------------------------------------------------------- #
# generic JSON encoding of optimizer state (tensors go to the tensor file)
# --------------------------------------------------------------------------- #
def _encode(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        plain = all(isinstance(k, str) and not k.startswith("__") for k in obj)
        if plain:
            return {k: _encode(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        if all(type(k) is int for k in obj):  # e.g. the optimizer's {param_id: state}
            return {"__int_keys__": {str(k): _encode(v, tensors, f"{prefix}.{k}")
                                     for k, v in obj.items()}}
        return {"__items__": [[_encode(k, tensors, f"{prefix}.key{i}"),
                               _encode(v, tensors, f"{prefix}.{i}")]
                              for i, (k, v) in enumerate(obj.items())]}
    raise TypeError(f"cannot checkpoint a value of type {type(obj).__name__} at {prefix!r} "
                    "(supported: tensors, numbers, strings, None, lists, tuples, dicts)")


def _decode(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors, where) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            key = obj["__tensor__"]
            if key not in tensors:
                raise ValueError(f"{where}: tensor {key!r} is missing from the state file")
            return tensors[key]
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors, where) for v in obj["__tuple__"])
        if "__float__" in obj:
            return float(obj["__float__"])
        if "__int_keys__" in obj:
            return {int(k): _decode(v, tensors, where) for k, v in obj["__int_keys__"].items()}
        if "__items__" in obj:
            return {_decode(k, tensors, where): _decode(v, tensors, where) for k, v in obj["__items__"]}
        return {k: _decode(v, tensors, where) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------- #
# RNG states
# --------------------------------------------------------------------------- #
def _collect_rng(tensors: dict[str, torch.Tensor]) -> dict:
    tensors["rng.torch_cpu"] = torch.get_rng_state()
    n_cuda = 0
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
            n_cuda += 1
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    return {
        "cuda_devices": n_cuda,
        "numpy": {"name": str(name), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def _rebuild_rng(meta: dict, tensors: dict[str, torch.Tensor], where: str) -> dict:
    try:
        np_meta = meta["numpy"]
        keys = tensors["rng.numpy_keys"].cpu().numpy().astype(np.uint32)
        return {
            "torch_cpu": tensors["rng.torch_cpu"].cpu(),
            "cuda": [tensors[f"rng.cuda.{i}"].cpu() for i in range(int(meta["cuda_devices"]))],
            "numpy": (np_meta["name"], keys, np_meta["pos"], np_meta["has_gauss"],
                      np_meta["cached_gaussian"]),
            "python": (meta["python"]["version"], tuple(meta["python"]["internal"]),
                       meta["python"]["gauss_next"]),
        }
    except KeyError as e:
        raise ValueError(f"{where}: RNG state is incomplete (missing {e})") from e


# --------------------------------------------------------------------------- #
# public API
# --------------------------------------------------------------------------- #
def _json_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.json"


def _generation_re(name: str) -> re.Pattern:
    # our tensor files and their temp files, for this checkpoint name only
    return re.compile(rf"^\.?{re.escape(name)}\.[0-9a-f]{{8}}\.(state\.)?safetensors(\.tmp)?$")


def has_checkpoint(directory: str | os.PathLike, name: str = "last") -> bool:
    """True if the commit record ``directory/{name}.json`` exists.

    It does not validate the files; :func:`load_checkpoint` does, with clear errors.
    """
    return _json_path(Path(directory), name).is_file()


def save_checkpoint(directory: str | os.PathLike, *, model_state: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer | None = None, config: dict, epoch: int,
                    extra: dict | None = None, rng: bool = True, name: str = "last") -> Path:
    """Atomically write checkpoint ``name`` into ``directory``; returns the JSON path.

    See the module docstring for the files and the crash-safety argument.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json_path = _json_path(directory, name)

    state_tensors: dict[str, torch.Tensor] = {}
    opt_meta = None
    if optimizer is not None:
        sd = optimizer.state_dict()
        opt_meta = {
            "state": _encode(sd["state"], state_tensors, "optimizer.state"),
            "param_groups": _encode(sd["param_groups"], state_tensors, "optimizer.param_groups"),
        }
    rng_meta = _collect_rng(state_tensors) if rng else None

    model_bytes = _tensor_file_bytes(model_state)
    state_bytes = _tensor_file_bytes(state_tensors)

    record = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": int(epoch),
        "config": config,
        "extra": extra if extra is not None else {},
        "optimizer": opt_meta,
        "rng": rng_meta,
    }
    try:
        json.dumps(record, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {json_path}: config/extra must be plain JSON "
                         f"(no NaN/inf, tensors or custom objects): {e}") from e

    gen = secrets.token_hex(4)
    model_path = directory / f"{name}.{gen}.safetensors"
    state_path = directory / f"{name}.{gen}.state.safetensors"
    record["files"] = {"model": model_path.name, "state": state_path.name}
    record["sha256"] = {"model": _sha256_bytes(model_bytes), "state": _sha256_bytes(state_bytes)}
    record_bytes = (json.dumps(record, indent=1, allow_nan=False) + "\n").encode()

    try:
        _atomic_write_bytes(model_path, model_bytes)
        _atomic_write_bytes(state_path, state_bytes)
        _atomic_write_bytes(json_path, record_bytes)  # the commit point
    except BaseException:
        # the old JSON (if any) still points at the old, untouched files
        for p in (model_path, state_path):
            try:
                p.unlink(missing_ok=True)
            except OSError:
                pass
        raise

    # committed: drop earlier generations and orphans of crashed saves
    pattern = _generation_re(name)
    keep = {model_path.name, state_path.name}
    for entry in os.listdir(directory):
        if pattern.match(entry) and entry not in keep:
            try:
                (directory / entry).unlink()
            except OSError:
                pass
    return json_path


def _read_record(directory: Path, name: str) -> dict:
    json_path = _json_path(directory, name)
    record = read_json_object(json_path, "checkpoint")
    if record.get("format") != FORMAT:
        raise ValueError(f"checkpoint file {json_path} is not a teakit checkpoint "
                         f"(format field {record.get('format')!r})")
    if record.get("version") != VERSION:
        raise ValueError(f"checkpoint file {json_path} has format version {record.get('version')!r}; "
                         f"this teakit reads version {VERSION}")
    for key in ("epoch", "config", "extra", "files", "sha256"):
        if key not in record:
            raise ValueError(f"checkpoint file {json_path} lacks the field {key!r}")
    return record


def model_digest(directory: str | os.PathLike, name: str = "last") -> str:
    """The SHA-256 of checkpoint ``name``'s model file, as its record holds it (no tensor is read)."""
    return _read_record(Path(directory), name)["sha256"]["model"]


def load_checkpoint(directory: str | os.PathLike, name: str = "last",
                    map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read checkpoint ``name`` from ``directory`` (safetensors + JSON only).

    Raises FileNotFoundError naming the missing file, or ValueError naming a
    file that is not valid JSON/safetensors or whose hash does not match.
    The model tensors go to ``map_location``; optimizer state stays on CPU
    (``optimizer.load_state_dict`` moves it next to the parameters) and RNG
    states are CPU tensors as torch requires.
    """
    directory = Path(directory)
    record = _read_record(directory, name)
    json_path = _json_path(directory, name)
    model_path = directory / record["files"]["model"]
    state_path = directory / record["files"]["state"]
    model_state = _read_tensor_file(model_path, record["sha256"].get("model"), map_location,
                                   json_path)
    state_tensors = _read_tensor_file(state_path, record["sha256"].get("state"), "cpu", json_path)

    where = str(json_path)
    opt_state = None
    if record.get("optimizer") is not None:
        opt = record["optimizer"]
        opt_state = {"state": _decode(opt["state"], state_tensors, where),
                     "param_groups": _decode(opt["param_groups"], state_tensors, where)}
    rng_state = None
    if record.get("rng") is not None:
        rng_state = _rebuild_rng(record["rng"], state_tensors, where)
    return Checkpoint(model_state=model_state, config=record["config"], epoch=int(record["epoch"]),
                      extra=record["extra"], optimizer_state=opt_state, rng_state=rng_state,
                      path=json_path)


def restore(checkpoint: Checkpoint, optimizer: torch.optim.Optimizer | None = None,
            rng: bool = True) -> None:
    """Load the checkpoint's optimizer state into ``optimizer`` and restore RNG states.

    The optimizer must be built over the same parameters, in the same order,
    as the saved one.  CUDA RNG states are restored for the devices present
    (the first ``min(saved, available)``).
    """
    where = checkpoint.path or "checkpoint"
    if optimizer is not None:
        if checkpoint.optimizer_state is None:
            raise ValueError(f"{where} holds no optimizer state (saved with optimizer=None)")
        optimizer.load_state_dict(checkpoint.optimizer_state)
    if rng:
        s = checkpoint.rng_state
        if s is None:
            raise ValueError(f"{where} holds no RNG state (saved with rng=False); "
                             "call restore(..., rng=False)")
        torch.set_rng_state(s["torch_cpu"])
        if s["cuda"] and torch.cuda.is_available():
            n = min(len(s["cuda"]), torch.cuda.device_count())
            for i in range(n):
                torch.cuda.set_rng_state(s["cuda"][i], device=i)
        np.random.set_state(s["numpy"])
        random.setstate(s["python"])


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    more = f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else ""
    return f"{len(keys)}: {shown}{more}"


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """``model.load_state_dict(state)`` after checking keys and shapes.

    Raises ValueError listing missing keys, unexpected keys and shape
    mismatches (expected vs found), so a wrong checkpoint is obvious.
    """
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    shapes = sorted(f"{k} (model {tuple(own[k].shape)}, checkpoint {tuple(state[k].shape)})"
                    for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape))
    problems = []
    if missing:
        problems.append(f"missing keys {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listing(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches {_listing(shapes)}")
    if problems:
        raise ValueError(f"checkpoint does not match {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def sha256_state(state: dict[str, torch.Tensor]) -> str:
    """Stable SHA-256 of a state dict: sorted keys, each key's dtype, shape and raw bytes.

    Device-independent (tensors are hashed from a CPU copy); used to
    fingerprint teachers.
    """
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key]
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"sha256_state: entry {key!r} is a {type(t).__name__}, not a tensor")
        t = t.detach().cpu().contiguous()
        header = json.dumps([key, str(t.dtype), list(t.shape)]).encode()
        h.update(len(header).to_bytes(8, "little"))
        h.update(header)
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        h.update(len(raw).to_bytes(8, "little"))
        h.update(raw)
    return h.hexdigest()
