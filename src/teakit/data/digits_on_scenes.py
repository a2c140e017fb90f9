"""``digits-on-scenes``: a COCO-on-Places analogue with a background-scene shortcut.

Foreground: the sklearn digits exactly as in ``colored_digits`` (bilinear
upsampling to ``size`` x ``size``, each digit rescaled so its maximum is 1,
intensity ``a``; mask ``a > 0.5``), drawn as white strokes:

    pixel = a                                                 on the mask
    pixel = a * 1 + (1 - a) * BACKGROUND_GAIN * background    elsewhere

so the background is darkened to at most ``BACKGROUND_GAIN`` (0.6) and stays
legible behind the white digit; every mask pixel is grey (all channels = a >
0.5) and carries nothing of the scene, so a perfect mask removes the shortcut
entirely (blending the scene into the strokes as well would leak it to a
masked classifier).

Backgrounds: real photographs bundled with scikit-image (``skimage.data``,
only images that load without a download).  Each photo is converted to RGB
float in [0, 1] (grayscale repeated to 3 channels, RGBA composited over white,
bool -> {0, 1}), resized (bilinear, antialiased) so its short side is
``SCENE_SCALE * size`` (4 x 32 = 128 px by default), and each image gets a
seeded uniformly random ``size`` x ``size`` crop of it.

Scenes (``SCENES``; the bias attribute is an index into it):

* training scenes, class k <-> ``TRAIN_SCENES[k]``: 0 astronaut, 1 coffee,
  2 chelsea, 3 rocket, 4 immunohistochemistry, 5 hubble_deep_field, 6 grass,
  7 brick, 8 colorwheel, 9 camera;
* scenes used only for ``ood`` (indices 10..13): gravel, moon, coins, clock.

Splits: the same seeded permutation as ``colored-digits`` (train 1,078 / val
180 / test 539 digits; the three test splits share their digits).

* ``train`` / ``val``: own scene with probability ``bias`` (default 1.0; 0.8
  mimics COCO-on-Places), else a uniformly random other training scene;
* ``id``: own scene; ``swapped``: scene of class ``(y + r) % 10``, ``r``
  uniform in 1..9; ``ood``: a uniformly random scene from ``OOD_SCENES``;
* ``train_debiased``: the train digits (same order) on uniformly random
  training scenes (all ten, own scene included), so the scene carries no label
  information.

Every random draw comes from a numpy ``Generator`` seeded by
``(seed, stream)``; same seed -> bit-identical tensors.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .colored_digits import (
    NUM_CLASSES,
    biased_choice,
    check_options,
    digit_intensities,
    rng_for,
    split_indices,
    swapped_choice,
)
from .imageset import ImageSet

TRAIN_SCENES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
                "hubble_deep_field", "grass", "brick", "colorwheel", "camera")
OOD_SCENES = ("gravel", "moon", "coins", "clock")
SCENES = TRAIN_SCENES + OOD_SCENES
SCENE_SCALE = 4
BACKGROUND_GAIN = 0.6

# Random streams (the second entry of the numpy seed); 0 is the split stream
# used by colored_digits.split_indices.
_TRAIN, _VAL, _OOD, _SWAP, _DEBIAS, _CROP = 11, 12, 13, 14, 15, 16


def to_rgb_float(image: np.ndarray) -> torch.Tensor:
    """A numpy image (H, W), (H, W, 3) or (H, W, 4) of bool / uint8 / uint16 /
    float as a (3, H, W) float32 tensor in [0, 1]."""
    img = np.asarray(image)
    if img.dtype == np.bool_:
        img = img.astype(np.float32)
    elif img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        img = img.astype(np.float32) / 65535.0
    elif np.issubdtype(img.dtype, np.floating):
        img = np.clip(img.astype(np.float32), 0.0, 1.0)
    else:
        raise TypeError(f"to_rgb_float: unsupported image dtype {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        alpha = img[:, :, 3:4]
        img = img[:, :, :3] * alpha + (1.0 - alpha)
    elif not (img.ndim == 3 and img.shape[2] == 3):
        raise ValueError(f"to_rgb_float: expected (H, W), (H, W, 3) or (H, W, 4), got {img.shape}")
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def load_scene(name: str, short_side: int) -> torch.Tensor:
    """The ``skimage.data`` photograph ``name`` as (3, h, w) float32 in [0, 1],
    resized so that min(h, w) == ``short_side``."""
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise ValueError(f"load_scene: skimage.data has no image named {name!r}")
    img = to_rgb_float(loader())
    h, w = img.shape[1:]
    scale = short_side / min(h, w)
    new_hw = (max(short_side, int(round(h * scale))), max(short_side, int(round(w * scale))))
    out = F.interpolate(img[None], size=new_hw, mode="bilinear", align_corners=False, antialias=True)[0]
    return out.clamp_(0.0, 1.0).contiguous()


def scene_crops(scenes: list[torch.Tensor], which: np.ndarray, size: int,
                rng: np.random.Generator) -> torch.Tensor:
    """One uniformly random ``size`` x ``size`` crop of ``scenes[which[i]]`` per i."""
    out = torch.empty(len(which), 3, size, size)
    u = rng.random((len(which), 2))
    for i, s in enumerate(which):
        img = scenes[int(s)]
        top = int(u[i, 0] * (img.shape[1] - size + 1))
        left = int(u[i, 1] * (img.shape[2] - size + 1))
        out[i] = img[:, top:top + size, left:left + size]
    return out


def _render(a: torch.Tensor, y: torch.Tensor, background: torch.Tensor, scene: np.ndarray) -> ImageSet:
    a4 = a[:, None]
    mask = a4 > 0.5
    x = torch.where(mask, a4, a4 + (1.0 - a4) * (BACKGROUND_GAIN * background))
    return ImageSet(x=x.clamp_(0.0, 1.0).contiguous(), y=y.clone(), mask=mask.contiguous(),
                    bias=torch.from_numpy(np.ascontiguousarray(scene, dtype=np.int64)))


def build_digits_on_scenes(seed: int = 0, *, size: int = 32, bias: float = 1.0) -> dict[str, ImageSet]:
    """Build the ``digits-on-scenes`` splits ``train``, ``val``,
    ``train_debiased``, ``id``, ``ood`` and ``swapped`` (see the module docstring)."""
    check_options(seed, size, bias)
    a_all, y_all = digit_intensities(size)
    split = split_indices(len(y_all), seed)
    scenes = [load_scene(name, SCENE_SCALE * size) for name in SCENES]
    crop_rng = rng_for(seed, _CROP)

    def make(name: str, scene: np.ndarray) -> ImageSet:
        idx = torch.from_numpy(split[name])
        return _render(a_all[idx], y_all[idx], scene_crops(scenes, scene, size, crop_rng), scene)

    y_train = y_all[torch.from_numpy(split["train"])].numpy()
    y_val = y_all[torch.from_numpy(split["val"])].numpy()
    y_test = y_all[torch.from_numpy(split["test"])].numpy()
    n_ood = len(OOD_SCENES)
    return {
        "train": make("train", biased_choice(y_train, bias, rng_for(seed, _TRAIN))),
        "val": make("val", biased_choice(y_val, bias, rng_for(seed, _VAL))),
        "train_debiased": make("train", rng_for(seed, _DEBIAS).integers(0, NUM_CLASSES, size=len(y_train))),
        "id": make("test", y_test.astype(np.int64)),
        "ood": make("test", NUM_CLASSES + rng_for(seed, _OOD).integers(0, n_ood, size=len(y_test))),
        "swapped": make("test", swapped_choice(y_test, rng_for(seed, _SWAP))),
    }
