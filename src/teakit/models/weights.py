"""Initial weights from a local file: ``build_model(..., weights=FILE)`` (``--weights FILE``).

``read_state_dict(path)`` reads a state dict from a ``.pth`` / ``.pt`` file
(``torch.load(..., weights_only=True)``; a checkpoint dict wrapping it under
``"state_dict"`` or ``"model"`` is unwrapped, a DDP ``module.`` prefix dropped)
or a ``.safetensors`` file.  Keys are torchvision's (or teakit's own for the
small cnn); DenseNet files in torchvision's older key names (``norm.1``, as
its ImageNet files) are renamed as torchvision does.

``apply_state_dict(model, state, source)`` loads it into every layer except

* the head (:func:`teakit.models.get_head`) when its shape differs (another
  number of classes), or when the file has none (a backbone file): it keeps
  its random initialisation;
* the stem's first conv when the model's stem was replaced (``stem_replaced``:
  the small stem's 3×3 conv, or ``in_channels != 3``) and its shape differs.

Anything else that does not fit -- keys of the file the model lacks, keys of
the model the file lacks, other shape mismatches -- means the file is of
another architecture: ``ValueError`` naming the file and example keys.
Nothing is ever downloaded.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

WRAPPER_KEYS = ("state_dict", "model")
SAFETENSORS_SUFFIXES = (".safetensors",)
# torchvision's DenseNet ImageNet files name ``denselayerN.norm1`` as ``denselayerN.norm.1``
# (renamed as torchvision.models.densenet does)
_LEGACY_DENSENET = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                              r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")
_EXAMPLES = 5

__all__ = ["LoadReport", "read_state_dict", "apply_state_dict", "load_weights", "head_keys", "stem_keys"]


@dataclass
class LoadReport:
    """What :func:`apply_state_dict` did: the keys loaded and the keys skipped (key -> why)."""

    source: str
    total: int = 0  # tensors in the file
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self, name: str | None = None) -> str:
        into = f" into {name}" if name else ""
        text = f"weights {self.source}: loaded {len(self.loaded)} of its {self.total} tensors{into}"
        if self.skipped:
            text += (f"; skipped {len(self.skipped)} (left randomly initialised): "
                     + ", ".join(f"{k} ({why})" for k, why in self.skipped.items()))
        else:
            text += "; skipped none"
        return text


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (``.pth``/``.pt``/… via ``torch.load(weights_only=True)``, or
    ``.safetensors``).  ``FileNotFoundError`` naming the path when absent, ``ValueError`` naming
    it when it cannot be read or holds no state dict of tensors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} not found (teakit never downloads weights)")
    try:
        if path.suffix.lower() in SAFETENSORS_SUFFIXES:
            from safetensors.torch import load_file
            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"weights file {path}: cannot read it as a state dict ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from err
    if isinstance(state, dict):
        for key in WRAPPER_KEYS:
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not state:
        raise ValueError(f"weights file {path}: not a state dict (got {type(state).__name__}"
                         f"{' with no entries' if isinstance(state, dict) else ''})")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"weights file {path}: not a state dict of tensors "
                         f"(e.g. {', '.join(map(str, bad[:_EXAMPLES]))})")
    if all(k.startswith("module.") for k in state):  # saved from a DDP-wrapped model
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _module_keys(model: nn.Module, module: nn.Module) -> set[str]:
    for prefix, m in model.named_modules():
        if m is module:
            return {f"{prefix}.{k}" if prefix else k for k in m.state_dict()}
    return set()


def head_keys(model: nn.Module) -> set[str]:
    """The state-dict keys of the model's head (:func:`teakit.models.get_head`); none for models without one."""
    from .parts import get_head

    try:
        head = get_head(model)
    except TypeError:
        return set()
    return _module_keys(model, head)


def stem_keys(model: nn.Module) -> set[str]:
    """The state-dict keys of the model's first conv (its stem conv)."""
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return _module_keys(model, first) if first is not None else set()


def _rename_legacy(state: dict, own: dict) -> dict:
    out = {}
    for k, v in state.items():
        if k not in own:
            m = _LEGACY_DENSENET.match(k)
            if m and (m.group(1) + m.group(2)) in own:
                k = m.group(1) + m.group(2)
        out[k] = v
    return out


def _examples(keys) -> str:
    keys = list(keys)
    more = f", … ({len(keys)} in all)" if len(keys) > _EXAMPLES else ""
    return ", ".join(keys[:_EXAMPLES]) + more


def apply_state_dict(model: nn.Module, state: dict, source, *, name: str | None = None,
                     stem_replaced: bool = False) -> LoadReport:
    """Load ``state`` into ``model`` in place, all but its head of another size (and its replaced
    stem conv of another shape, with ``stem_replaced``); returns the :class:`LoadReport`.
    ``ValueError`` naming ``source`` and example keys when the file is of another architecture."""
    source = str(source)
    what = name or type(model).__name__
    own = model.state_dict()
    state = _rename_legacy(state, own)
    head = head_keys(model)
    stem = stem_keys(model) if stem_replaced else set()
    optional = {k for k in own if k.endswith("num_batches_tracked")}  # absent from older torchvision files
    unexpected = [k for k in state if k not in own]
    missing = [k for k in own if k not in state and k not in optional and k not in head]
    report = LoadReport(source, total=len(state))
    mismatched = []
    for k, v in state.items():
        if k not in own:
            continue
        if tuple(v.shape) == tuple(own[k].shape):
            report.loaded.append(k)
        elif k in head or k in stem:
            report.skipped[k] = f"{'head' if k in head else 'stem'}: file {tuple(v.shape)}, model {tuple(own[k].shape)}"
        else:
            mismatched.append(k)
    for k in sorted(head - set(state)):
        report.skipped[k] = "head: not in the file"
    if unexpected or missing or mismatched:
        parts = []
        if unexpected:
            parts.append(f"{len(unexpected)} keys of the file are not in the model (e.g. {_examples(unexpected)})")
        if missing:
            parts.append(f"{len(missing)} keys of the model are not in the file (e.g. {_examples(missing)})")
        if mismatched:
            parts.append("shapes differ at " + _examples(
                [f"{k} file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in mismatched]))
        hint = ""
        if not unexpected and not missing and set(mismatched) <= stem_keys(model):
            hint = " (only the stem conv differs: was the file saved with the other --stem, small or imagenet?)"
        raise ValueError(f"weights file {source} does not fit {what}, it holds another architecture: "
                         + "; ".join(parts) + hint)
    model.load_state_dict({k: state[k] for k in report.loaded}, strict=False)
    return report


def load_weights(model: nn.Module, path, *, name: str | None = None, stem_replaced: bool = False,
                 verbose: bool = True) -> LoadReport:
    """:func:`read_state_dict` ``path`` and :func:`apply_state_dict` it into ``model``; with
    ``verbose`` print what was loaded and skipped."""
    report = apply_state_dict(model, read_state_dict(path), path, name=name, stem_replaced=stem_replaced)
    if verbose:
        print(report.summary(name), flush=True)
    return report
