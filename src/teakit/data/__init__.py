"""Built-in shortcut benchmarks and the ``ImageSet`` container.

``load_builtin(name, seed, **options)`` builds one of ``BUILTIN`` in memory
(no download, well under 5 s).  The ten-class digit benchmarks
(``colored-digits``, ``digits-on-scenes``) return the splits ``SPLITS``:
``train``, ``val`` (both biased), ``train_debiased`` (the train digits with the
shortcut broken, for training teachers) and the test splits ``id``, ``ood`` and
``swapped``; options (keyword-only) ``size`` (image side, default 32) and
``bias`` (the probability a train / val image carries its class's shortcut,
default 1.0).  The two-class Waterbirds analogue ``glyphs-on-places`` returns
``GLYPHS_ON_PLACES_SPLITS``: ``train`` (95 % of each class on its own place),
``val``, ``train_debiased`` and ``test`` (val and test balanced over place
within each class), bias attribute = group ``2 * y + place``; options ``size``
(default 64) and ``bias`` (the share of each class's train images on its own
place, default 0.95).  The chest-X-ray analogue ``phantom-xrays`` returns
``PHANTOM_XRAYS_SPLITS``: ``train``, ``val``, ``train_debiased``, ``id``,
``swapped`` and ``external`` (three classes that differ only inside the lungs,
lung masks, bias attribute = the hospital; ``with_info=True`` also gives the
per-image hospital names); options ``size`` (default 64, at least 64) and
``bias`` (the share of each class's train / val images from its own two
hospitals, default 0.9).  The held-out ``letters-on-scenes`` (ten letters on
their own scenes) returns the digit benchmarks' ``SPLITS``, options as theirs.
Any dataset, built in or on disk, by name: :func:`teakit.data.load.load_data`.

Importing this package imports no torch (the dataset names in
:mod:`teakit.data.names` are all the command line needs); the rest is imported
on first use.
"""
from __future__ import annotations

import importlib

from .names import BUILTIN, DATASETS, DISK_DATASETS

SPLITS = ("train", "val", "train_debiased", "id", "ood", "swapped")  # the digit benchmarks'
GLYPHS_ON_PLACES_SPLITS = ("train", "val", "train_debiased", "test")

_LAZY = {  # name: the submodule that defines it, imported on first access
    "NUM_CLASSES": "colored_digits", "PALETTE": "colored_digits", "build_colored_digits": "colored_digits",
    "OOD_SCENES": "digits_on_scenes", "SCENES": "digits_on_scenes", "TRAIN_SCENES": "digits_on_scenes",
    "build_digits_on_scenes": "digits_on_scenes", "ImageSet": "imageset",
    "build_glyphs_on_places": "glyphs_on_places", "PLACES": "glyphs_on_places",
    "build_phantom_xrays": "phantom_xrays", "PHANTOM_XRAYS_SPLITS": "phantom_xrays",
    "build_letters_on_scenes": "letters_on_scenes",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def load_builtin(name: str, seed: int = 0, *, with_info: bool = False, **options):
    """Build the built-in benchmark ``name`` (one of ``BUILTIN``) with ``seed``;
    ``options`` (``size``, ``bias``) go to its builder; returns ``{split: ImageSet}``,
    or ``(splits, info)`` with ``with_info`` (``info``: what the builder records, as a
    reader's info -- ``classes``, ``sources`` per split, … for ``phantom-xrays``; ``{}``
    for the others)."""
    if name == "phantom-xrays":
        from .phantom_xrays import build_phantom_xrays
        return build_phantom_xrays(seed, with_info=with_info, **options)
    if name == "colored-digits":
        from .colored_digits import build_colored_digits
        splits = build_colored_digits(seed, **options)
    elif name == "digits-on-scenes":
        from .digits_on_scenes import build_digits_on_scenes
        splits = build_digits_on_scenes(seed, **options)
    elif name == "glyphs-on-places":
        from .glyphs_on_places import build_glyphs_on_places
        splits = build_glyphs_on_places(seed, **options)
    elif name == "letters-on-scenes":
        from .letters_on_scenes import build_letters_on_scenes
        splits = build_letters_on_scenes(seed, **options)
    else:
        raise ValueError(f"unknown built-in dataset name {name!r}; known names: {', '.join(BUILTIN)}")
    return (splits, {}) if with_info else splits


__all__ = ["BUILTIN", "DATASETS", "DISK_DATASETS", "NUM_CLASSES", "SPLITS", "GLYPHS_ON_PLACES_SPLITS", "ImageSet",
           "load_builtin", "build_colored_digits", "build_digits_on_scenes", "build_glyphs_on_places", "PALETTE",
           "TRAIN_SCENES", "OOD_SCENES", "SCENES", "PLACES", "build_phantom_xrays", "PHANTOM_XRAYS_SPLITS"]
