"""Scenes that no built-in benchmark shows, for a label-free check of robustness.

``FOREIGN_SCENES`` are ``skimage.data`` pictures that load without a download and
that no built-in benchmark uses as a training, validation or test scene: a cat
photo, a retina fundus photo, a scanned page and a photo of text (fixed
pictures: ``binary_blobs``, drawn anew at each call, is left out).
:func:`foreign_backgrounds` cuts seeded random crops of them, each scene resized
so its short side is ``SCALE`` × the image side (as the benchmarks' own scenes
are).

:func:`foreign_composites` puts each image's foreground (a given mask, e.g. a
segmenter teacher's own) on one crop of every foreign scene.  A student whose
decision on those composites stays the teacher's decision on the original
image ignores backgrounds it has never seen; `tea study lobo` scores candidates
by that (:mod:`teakit.lobo`).  Assumes images of 3 channels in [0, 1], or
normalised by ``norm = (mean, std)`` as :class:`~teakit.data.imageset.ImageSet` says.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from .augment import paste
from .colored_digits import rng_for
from .digits_on_scenes import load_scene, scene_crops

FOREIGN_SCENES = ("cat", "retina", "page", "text")
SCALE = 4
_CROPS = 91  # the random stream of the crops


@functools.lru_cache(maxsize=8)
def _scenes(size: int) -> tuple[torch.Tensor, ...]:
    return tuple(load_scene(name, SCALE * size) for name in FOREIGN_SCENES)


def foreign_backgrounds(count: int, size: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """``count`` crops (count, 3, size, size) in [0, 1], image i from scene ``i % len(FOREIGN_SCENES)``
    at a uniformly random position (seeded by ``seed``; the same arguments give the same crops), and
    the scene index of each."""
    if count < 0 or size < 1:
        raise ValueError(f"foreign_backgrounds: count={count}, size={size}; expected count >= 0, size >= 1")
    which = np.arange(count) % len(FOREIGN_SCENES)
    return scene_crops(list(_scenes(size)), which, size, rng_for(seed, _CROPS)), which


def foreign_composites(x: torch.Tensor, keep: torch.Tensor, seed: int = 0, norm=None) -> torch.Tensor:
    """Every image of ``x`` (B, 3, S, S) on a crop of every foreign scene outside its ``keep`` mask
    ((B, 1, S, S) bool): (len(FOREIGN_SCENES) * B, 3, S, S), scene-major (rows ``k*B … k*B + B - 1``
    are all images on scene k).  The crops are in ``x``'s value space: normalised by ``norm`` when
    given, and grey (the channels' mean) when every image of ``x`` is grey."""
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3]:
        raise ValueError(f"foreign_composites: expected square 3-channel images (B, 3, S, S), got {tuple(x.shape)}")
    n = len(FOREIGN_SCENES)
    crops, _ = foreign_backgrounds(n * x.shape[0], x.shape[2], seed)
    crops = crops.view(x.shape[0], n, *x.shape[1:]).transpose(0, 1).reshape(n * x.shape[0], *x.shape[1:])
    if bool((x == x[:, :1]).all()):
        crops = crops.mean(1, keepdim=True).expand_as(crops)
    if norm is not None:
        mean, std = (torch.tensor(part, dtype=crops.dtype).view(1, 3, 1, 1) for part in norm)
        crops = (crops - mean) / std
    reps = x.repeat(n, 1, 1, 1)
    return paste(reps, keep.repeat(n, 1, 1, 1), torch.ones(len(reps), dtype=torch.bool),
                 crops.to(x.device, x.dtype))
