"""``letters-on-scenes``: the held-out benchmark of `tea study lobo` -- ten
letter classes, each on its own background scene, with other foregrounds and
other scenes than every benchmark the recipe was chosen on.

No recipe choice may look at it: it is listed in ``--held-out`` (and in
:data:`teakit.data.names.HELD_OUT`), so its scores enter no choice and only its
test figures are reported.  It is not a demo benchmark.

Foreground: one of ``LETTERS`` (class k = ``LETTERS[k]``), rendered with the
fonts that ship with matplotlib by the glyph renderer of ``glyphs-on-places``
(:func:`teakit.data.glyphs_on_places.glyph_layers`: random font, extent 0.45 to
0.75 of the side, rotation within +-30 degrees, position, and a random bright
colour independent of the class); mask = pixel coverage > 0.5.  Compositing is
hard (the glyph colour on the mask, the scene elsewhere), so a perfect mask
removes the shortcut.

Scenes (the bias attribute is an index into ``SCENES``): ``skimage.data``
photographs that load without a download, grayscale ones toned with their
scene's ``TINTS`` entry, resized so the short side is ``SCENE_SCALE * size``;
each image gets a seeded random crop.  Class k is paired with
``TRAIN_SCENES[k]``; ``OOD_SCENES`` are seen only by the ``ood`` split.  Six of
the ten training scenes appear in no other benchmark; digits-on-scenes and
glyphs-on-places use the other four with other pairings and tones.

Splits (images per class): ``train`` 300 and ``val`` 50 (own scene with
probability ``bias``, default 1.0, else a random other training scene),
``train_debiased`` (the train letters on uniformly random training scenes),
and the test letters (100 per class) on their own scene (``id``), on a random
unseen scene (``ood``) and on another class's scene (``swapped``), as the
digit benchmarks' splits.  Every random draw comes from a numpy ``Generator``
seeded by ``(seed, stream)``: same seed -> bit-identical tensors.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from .colored_digits import biased_choice, check_options, rng_for, swapped_choice
from .digits_on_scenes import load_scene, scene_crops
from .glyphs_on_places import compose, glyph_layers
from .imageset import ImageSet

LETTERS = "AEFHKLMRTY"
NUM_CLASSES = len(LETTERS)
TRAIN_SCENES = ("horse", "logo", "cell", "checkerboard", "shepp_logan_phantom", "microaneurysms",
                "grass", "gravel", "immunohistochemistry", "hubble_deep_field")
OOD_SCENES = ("astronaut", "coffee", "coins", "camera")
SCENES = TRAIN_SCENES + OOD_SCENES
# RGB gains of the grayscale scenes (the others keep their colours): each training scene its own tone
TINTS = {"horse": (1.0, 0.8, 0.5), "cell": (0.6, 1.0, 0.6), "checkerboard": (0.5, 0.6, 1.0),
         "shepp_logan_phantom": (1.0, 0.5, 0.8), "microaneurysms": (1.0, 0.9, 0.3),
         "grass": (0.5, 0.9, 0.9), "gravel": (0.9, 0.6, 0.4), "coins": (0.8, 0.8, 0.8), "camera": (0.9, 0.9, 1.0)}
SCENE_SCALE = 4
PER_CLASS = {"train": 300, "val": 50, "test": 100}
MIN_SIZE = 16

# Random streams (the second entry of the numpy seed)
_TRAIN, _VAL, _TEST, _OOD, _SWAP, _DEBIAS, _CROP, _LABELS = 31, 32, 33, 34, 35, 36, 37, 38


@functools.lru_cache(maxsize=4)
def scenes(size: int) -> tuple[torch.Tensor, ...]:
    """Every scene of ``SCENES`` as (3, h, w) float32 in [0, 1], short side ``SCENE_SCALE * size``."""
    out = []
    for name in SCENES:
        img = load_scene(name, SCENE_SCALE * size)
        if name in TINTS:
            img = (img * torch.tensor(TINTS[name]).view(3, 1, 1)).clamp_(0.0, 1.0)
        out.append(img.contiguous())
    return tuple(out)


def build_letters_on_scenes(seed: int = 0, *, size: int = 32, bias: float = 1.0) -> dict[str, ImageSet]:
    """Build the ``letters-on-scenes`` splits ``train``, ``val``, ``train_debiased``,
    ``id``, ``ood`` and ``swapped`` (see the module docstring)."""
    check_options(seed, size, bias)
    if size < MIN_SIZE:
        raise ValueError(f"size must be an int >= {MIN_SIZE} for letters-on-scenes, got {size!r}")
    photos = list(scenes(size))
    crop_rng = rng_for(seed, _CROP)
    chars = tuple(LETTERS)

    def letters(split: str, stream: int):
        rng = rng_for(seed, _LABELS + 10 * stream)
        y = np.repeat(np.arange(NUM_CLASSES), PER_CLASS[split])[rng.permutation(NUM_CLASSES * PER_CLASS[split])]
        y = y.astype(np.int64)
        mask, colour, _ = glyph_layers(y, size, rng_for(seed, stream), class_chars=chars)
        return y, mask, colour

    def make(y, mask, colour, scene: np.ndarray) -> ImageSet:
        x = compose(mask, colour, scene_crops(photos, scene, size, crop_rng))
        return ImageSet(x=x, y=torch.from_numpy(y), mask=mask.clone(),
                        bias=torch.from_numpy(np.ascontiguousarray(scene, dtype=np.int64)))

    train, val, test = letters("train", _TRAIN), letters("val", _VAL), letters("test", _TEST)
    n_test = len(test[0])
    return {
        "train": make(*train, biased_choice(train[0], bias, rng_for(seed, _TRAIN))),
        "val": make(*val, biased_choice(val[0], bias, rng_for(seed, _VAL))),
        "train_debiased": make(*train, rng_for(seed, _DEBIAS).integers(0, NUM_CLASSES, size=len(train[0]))),
        "id": make(*test, test[0].copy()),
        "ood": make(*test, NUM_CLASSES + rng_for(seed, _OOD).integers(0, len(OOD_SCENES), size=n_test)),
        "swapped": make(*test, swapped_choice(test[0], rng_for(seed, _SWAP))),
    }
