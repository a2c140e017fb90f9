"""``colored-digits``: a small Colored-MNIST analogue with a foreground-colour shortcut.

Source images: the 1,797 real 8x8 handwritten digits bundled with scikit-learn
(``sklearn.datasets.load_digits``, values 0..16; no download).  Each digit is
scaled to [0, 1], upsampled to ``size`` x ``size`` (default 32) by bilinear
interpolation (``align_corners=False``) and then divided by its own maximum, so
every digit's brightest pixel has intensity exactly 1.  With ``a`` that
intensity map, an image is ``a[None] * colour[:, None, None]`` on a black
background (pixels where ``a == 0`` are exactly 0) and the foreground mask is
``a > 0.5``.

Splits (a seeded random permutation of all 1,797 digits, not stratified):
train 60 % (1,078), val 10 % (180), test the remaining 30 % (539); the same
test digits are rendered three ways.

* ``train`` / ``val``: with probability ``bias`` (default 1.0) an image gets its
  class colour ``PALETTE[y]``, otherwise the colour of class ``(y + r) % 10``
  with ``r`` uniform in 1..9 (a uniformly random other palette colour).
* ``id``: every test image in its class colour (always 100 % biased).
* ``swapped``: every test image in the colour of class ``(y + r) % 10``,
  ``r`` uniform in 1..9 -- never its own colour.
* ``ood``: uniform random RGB colours, rejected while their Euclidean distance
  to any palette colour is < ``OOD_MIN_DISTANCE`` (0.3) or their largest
  channel is < ``MIN_BRIGHTNESS`` (0.4).
* ``train_debiased``: the train digits (same order) in uniform random RGB
  colours whose largest channel is >= ``MIN_BRIGHTNESS`` -- colour carries no
  label information.

The bias attribute is the palette index used, or -1 for the random colours of
``ood`` and ``train_debiased``.  Every random draw comes from a numpy
``Generator`` seeded by ``(seed, stream)``: same seed -> bit-identical tensors,
and the split depends on the seed only (not on ``bias`` or ``size``).

The helpers ``digit_intensities``, ``split_indices`` and ``check_options`` are
shared with ``digits_on_scenes``; ``colour_splits`` (the colouring of given
intensity maps into the six splits) is shared with ``colored_mnist``.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F

from .imageset import ImageSet

NUM_CLASSES = 10
TRAIN_FRACTION = 0.6
VAL_FRACTION = 0.1

# Class k <-> PALETTE[k], RGB in [0, 1]; the minimum pairwise distance is ~0.45.
PALETTE = (
    (1.00, 0.00, 0.00),  # 0 red
    (0.00, 0.80, 0.00),  # 1 green
    (0.15, 0.35, 1.00),  # 2 blue
    (1.00, 1.00, 0.00),  # 3 yellow
    (1.00, 0.00, 1.00),  # 4 magenta
    (0.00, 1.00, 1.00),  # 5 cyan
    (1.00, 0.50, 0.00),  # 6 orange
    (0.55, 0.10, 0.95),  # 7 purple
    (0.60, 1.00, 0.20),  # 8 lime
    (1.00, 0.60, 0.75),  # 9 pink
)
OOD_MIN_DISTANCE = 0.3
MIN_BRIGHTNESS = 0.4

# Independent random streams (the second entry of the numpy seed).
_SPLIT, _TRAIN, _VAL, _OOD, _SWAP, _DEBIAS = range(6)


# --------------------------------------------------------------------------- shared helpers
def check_options(seed: int, size: int, bias: float) -> None:
    """Validate the options common to the built-in digit benchmarks."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    if isinstance(bias, bool) or not isinstance(bias, numbers.Real) or not 0.0 <= bias <= 1.0:
        raise ValueError(f"bias must be a probability in [0, 1], got {bias!r}")


def rng_for(seed: int, stream: int) -> np.random.Generator:
    """The numpy generator of one named random stream of a dataset build."""
    return np.random.default_rng([int(seed), int(stream)])


def digit_intensities(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All sklearn digits as intensities ``a`` (1797, size, size) float32 in
    [0, 1] (bilinear upsampling, each digit rescaled so its maximum is 1) and
    their labels (1797,) int64."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    img = torch.from_numpy(np.asarray(digits.images, dtype=np.float32) / 16.0)
    a = F.interpolate(img[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    a = a.clamp_(0.0, 1.0)
    a = a / a.amax(dim=(1, 2), keepdim=True)
    y = torch.from_numpy(np.asarray(digits.target, dtype=np.int64))
    return a.contiguous(), y


def split_indices(n: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded random permutation of ``range(n)`` cut into train 60 % / val 10 %
    / test (the rest)."""
    perm = rng_for(seed, _SPLIT).permutation(n)
    n_train = int(round(TRAIN_FRACTION * n))
    n_val = int(round(VAL_FRACTION * n))
    return {"train": perm[:n_train], "val": perm[n_train:n_train + n_val], "test": perm[n_train + n_val:]}


def biased_choice(y: np.ndarray, bias: float, rng: np.random.Generator) -> np.ndarray:
    """Per image, its own class index with probability ``bias``, otherwise a
    uniformly random other class index."""
    own = rng.random(len(y)) < bias
    other = (y + rng.integers(1, NUM_CLASSES, size=len(y))) % NUM_CLASSES
    return np.where(own, y, other).astype(np.int64)


def swapped_choice(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per image, a uniformly random class index other than its own."""
    return ((y + rng.integers(1, NUM_CLASSES, size=len(y))) % NUM_CLASSES).astype(np.int64)


# --------------------------------------------------------------------------- colours
def palette_tensor() -> torch.Tensor:
    """``PALETTE`` as a (10, 3) float32 tensor."""
    return torch.tensor(PALETTE, dtype=torch.float32)


def random_bright_colours(n: int, rng: np.random.Generator, min_distance: float = 0.0) -> np.ndarray:
    """``n`` uniform RGB colours (n, 3) float32 with largest channel >=
    ``MIN_BRIGHTNESS`` and, if ``min_distance > 0``, at distance >=
    ``min_distance`` from every palette colour (rejection sampling)."""
    palette = np.asarray(PALETTE, dtype=np.float32)
    kept: list[np.ndarray] = []
    count = 0
    while count < n:
        c = rng.random((2 * max(n - count, 8), 3)).astype(np.float32)
        ok = c.max(axis=1) >= MIN_BRIGHTNESS
        if min_distance > 0:
            dist = np.linalg.norm(c[:, None, :] - palette[None, :, :], axis=-1).min(axis=1)
            ok &= dist >= min_distance
        kept.append(c[ok])
        count += int(ok.sum())
    return np.concatenate(kept)[:n]


def _render(a: torch.Tensor, y: torch.Tensor, colours: torch.Tensor, bias: np.ndarray) -> ImageSet:
    x = a[:, None] * colours[:, :, None, None]
    return ImageSet(x=x.contiguous(), y=y.clone(), mask=(a > 0.5)[:, None].contiguous(),
                    bias=torch.from_numpy(np.ascontiguousarray(bias, dtype=np.int64)))


# --------------------------------------------------------------------------- colouring
def colour_splits(parts: dict[str, tuple[torch.Tensor, torch.Tensor]], seed: int,
                  bias: float) -> dict[str, ImageSet]:
    """Colour given intensity maps into the splits ``train``, ``val``,
    ``train_debiased``, ``id``, ``ood`` and ``swapped``.

    ``parts`` maps ``"train"``, ``"val"`` and ``"test"`` to ``(a, y)``: the
    intensities (N, H, W) float32 in [0, 1] and labels (N,) int64 of that part.
    The colouring rules, palette, mask rule (``a > 0.5``) and random streams
    are those of the module docstring; ``colored-digits`` and
    ``colored-mnist`` both use this function.
    """
    palette = palette_tensor()
    out: dict[str, ImageSet] = {}
    a, y = parts["train"]
    yn = y.numpy()
    k = biased_choice(yn, bias, rng_for(seed, _TRAIN))
    out["train"] = _render(a, y, palette[torch.from_numpy(k)], k)

    a_val, y_val = parts["val"]
    k = biased_choice(y_val.numpy(), bias, rng_for(seed, _VAL))
    out["val"] = _render(a_val, y_val, palette[torch.from_numpy(k)], k)

    rand = torch.from_numpy(random_bright_colours(len(yn), rng_for(seed, _DEBIAS)))
    out["train_debiased"] = _render(a, y, rand, np.full(len(yn), -1))

    a, y = parts["test"]
    yn = y.numpy()
    out["id"] = _render(a, y, palette[y], yn)
    ood = torch.from_numpy(random_bright_colours(len(yn), rng_for(seed, _OOD), OOD_MIN_DISTANCE))
    out["ood"] = _render(a, y, ood, np.full(len(yn), -1))
    k = swapped_choice(yn, rng_for(seed, _SWAP))
    out["swapped"] = _render(a, y, palette[torch.from_numpy(k)], k)
    return out


# --------------------------------------------------------------------------- builder
def build_colored_digits(seed: int = 0, *, size: int = 32, bias: float = 1.0) -> dict[str, ImageSet]:
    """Build the ``colored-digits`` splits ``train``, ``val``, ``train_debiased``,
    ``id``, ``ood`` and ``swapped`` (see the module docstring)."""
    check_options(seed, size, bias)
    a_all, y_all = digit_intensities(size)
    split = split_indices(len(y_all), seed)
    parts = {}
    for name in ("train", "val", "test"):
        idx = torch.from_numpy(split[name])
        parts[name] = (a_all[idx], y_all[idx])
    return colour_splits(parts, seed, bias)
