"""teakit: Training with Explanations Alone (TEA).

A student classifier is trained only to make its LRP-ε heatmaps match those of a
teacher that already ignores the shortcut.  README.md and docs/ describe the method and the API.

The public API (``__all__``) is imported on first use, so that ``import teakit``
and ``tea --help`` do not import torch.  ``teakit.explain`` is the function
:func:`teakit.explain.explain`, also after the subpackage of the same name has
been imported.
"""
from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

_API = {  # public name: the module that defines it
    "explain": "teakit.explain",
    "heatmap_loss": "teakit.objectives.heatmap_loss",
    "TEA": "teakit.objectives.tea",
    "TEAConfig": "teakit.config",
    "TrainConfig": "teakit.config",
    "distill_config": "teakit.config",
    "fit_model": "teakit.train",
    "Teacher": "teakit.teachers",
    "DebiasedTeacher": "teakit.teachers",
    "SegmenterTeacher": "teakit.teachers",
    "ImageSet": "teakit.data",
    "SmallCNN": "teakit.models",
    "build_model": "teakit.models",
    "evaluate_splits": "teakit.evaluate",
}
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))


class _Package(types.ModuleType):
    """``teakit`` itself.  Importing a submodule sets it as an attribute of its package;
    for ``teakit.explain`` that would hide the function ``explain`` behind the
    subpackage, so the function is bound instead (the subpackage stays in
    ``sys.modules``, where ``import teakit.explain.lrp`` and ``from teakit.explain
    import ...`` find it)."""

    def __setattr__(self, name: str, value):
        if name == "explain" and isinstance(value, types.ModuleType) and hasattr(value, "explain"):
            value = value.explain
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
