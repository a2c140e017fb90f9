"""Built-in shortcut benchmarks and the ``ImageSet`` container.

``load_builtin(name, seed, **options)`` builds one of ``BUILTIN`` in memory
(no download, well under 5 s) and returns the splits ``train``, ``val`` (both
biased), ``train_debiased`` (the train digits with the shortcut broken, for
training teachers) and the test splits ``id``, ``ood`` and ``swapped``.
Options (keyword-only): ``size`` (image side, default 32) and ``bias`` (the
probability a train / val image carries its class's shortcut, default 1.0).
"""
from __future__ import annotations

from .colored_digits import NUM_CLASSES, PALETTE, build_colored_digits
from .digits_on_scenes import OOD_SCENES, SCENES, TRAIN_SCENES, build_digits_on_scenes
from .imageset import ImageSet

BUILTIN = ("colored-digits", "digits-on-scenes")
SPLITS = ("train", "val", "train_debiased", "id", "ood", "swapped")


def load_builtin(name: str, seed: int = 0, **options) -> dict[str, ImageSet]:
    """Build the built-in benchmark ``name`` (one of ``BUILTIN``) with ``seed``;
    ``options`` (``size``, ``bias``) go to its builder."""
    if name == "colored-digits":
        return build_colored_digits(seed, **options)
    if name == "digits-on-scenes":
        return build_digits_on_scenes(seed, **options)
    raise ValueError(f"unknown built-in dataset name {name!r}; known names: {', '.join(BUILTIN)}")


__all__ = ["BUILTIN", "NUM_CLASSES", "SPLITS", "ImageSet", "load_builtin", "build_colored_digits",
           "build_digits_on_scenes", "PALETTE", "TRAIN_SCENES", "OOD_SCENES", "SCENES"]
