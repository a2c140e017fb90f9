"""Tests for the built-in shortcut benchmarks (teakit.data)."""

import pytest
import torch

from teakit.data import BUILTIN, NUM_CLASSES, SPLITS, ImageSet, load_builtin
from teakit.data.colored_digits import MIN_BRIGHTNESS, OOD_MIN_DISTANCE, PALETTE
from teakit.data.digits_on_scenes import (
    BACKGROUND_GAIN,
    OOD_SCENES,
    SCENES,
    TRAIN_SCENES,
    to_rgb_float,
)

SIZES = {"train": 1078, "val": 180, "train_debiased": 1078, "id": 539, "ood": 539, "swapped": 539}
# the ten-class digit benchmarks with the id / ood / swapped test splits (glyphs-on-places, the
# two-class Waterbirds analogue with one test split: tests/data/test_glyphs_on_places.py; phantom-xrays,
# the chest-X-ray analogue: tests/data/test_phantom_xrays.py; the held-out letters-on-scenes:
# tests/data/test_letters_on_scenes.py)
DIGIT_BENCHMARKS = ("colored-digits", "digits-on-scenes")


def test_builtin_names():
    assert set(BUILTIN) == set(DIGIT_BENCHMARKS) | {"glyphs-on-places", "phantom-xrays", "letters-on-scenes"}
    assert len(set(BUILTIN)) == len(BUILTIN)


@pytest.fixture(scope="module")
def builds():
    """Every dataset build the tests need, made once."""
    out = {}
    for name in DIGIT_BENCHMARKS:
        out[name, 0] = load_builtin(name, seed=0)
        out[name, "0-again"] = load_builtin(name, seed=0)
        out[name, 1] = load_builtin(name, seed=1)
        out[name, "bias0.8"] = load_builtin(name, seed=0, bias=0.8)
    return out


def image_colours(x: torch.Tensor) -> torch.Tensor:
    """Per image, the colour of its brightest pixel (N, 3); for colored-digits
    that pixel has intensity exactly 1, so this is the paint colour."""
    flat = x.flatten(2)                                  # (N, 3, HW)
    idx = flat.sum(1).argmax(1)                          # (N,)
    return flat[torch.arange(len(x)), :, idx]


def intensities(x: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """Recover the digit intensity ``a`` (N, H, W) of colored-digits images."""
    ch = colours.argmax(1)
    n = torch.arange(len(x))
    return x[n, ch] / colours[n, ch][:, None, None]


def nearest_centroid_accuracy(feat: torch.Tensor, y: torch.Tensor) -> float:
    """Fit class centroids of ``feat`` on the first half, score the second."""
    half = len(y) // 2
    cent = torch.stack([feat[:half][y[:half] == k].mean(0) for k in range(NUM_CLASSES)])
    pred = torch.cdist(feat[half:], cent).argmin(1)
    return (pred == y[half:]).float().mean().item()


# --------------------------------------------------------------------------- common
@pytest.mark.parametrize("name", DIGIT_BENCHMARKS)
def test_shapes_dtypes_range_sizes(builds, name):
    splits = builds[name, 0]
    assert set(splits) == set(SPLITS)
    for split, s in splits.items():
        assert isinstance(s, ImageSet)
        assert len(s) == SIZES[split], split
        assert s.x.shape == (SIZES[split], 3, 32, 32) and s.x.dtype == torch.float32
        assert s.mask.shape == (SIZES[split], 1, 32, 32) and s.mask.dtype == torch.bool
        assert s.y.dtype == torch.int64 and s.bias.dtype == torch.int64
        assert 0.0 <= s.x.min().item() and s.x.max().item() <= 1.0
        assert set(s.y.unique().tolist()) == set(range(NUM_CLASSES))
        assert 0.05 < s.mask.float().mean().item() < 0.6          # a digit, not empty nor full
    # train_debiased is the train digits; the three test splits share their digits
    assert torch.equal(splits["train"].y, splits["train_debiased"].y)
    assert torch.equal(splits["train"].mask, splits["train_debiased"].mask)
    assert not torch.equal(splits["train"].x, splits["train_debiased"].x)
    for split in ("ood", "swapped"):
        assert torch.equal(splits["id"].y, splits[split].y)
        assert torch.equal(splits["id"].mask, splits[split].mask)
    assert sum(len(splits[k]) for k in ("train", "val", "id")) == 1797


@pytest.mark.parametrize("name", DIGIT_BENCHMARKS)
def test_determinism(builds, name):
    a, b, c = builds[name, 0], builds[name, "0-again"], builds[name, 1]
    for split in SPLITS:
        assert torch.equal(a[split].x, b[split].x), split
        assert torch.equal(a[split].bias, b[split].bias), split
        assert a[split].fingerprint() == b[split].fingerprint()
        assert a[split].fingerprint() != c[split].fingerprint()
    assert not torch.equal(a["train"].y, c["train"].y)        # another split of the digits


def test_same_seed_same_split_across_datasets(builds):
    cd, ds = builds["colored-digits", 0], builds["digits-on-scenes", 0]
    for split in SPLITS:
        assert torch.equal(cd[split].y, ds[split].y)
        assert torch.equal(cd[split].mask, ds[split].mask)


@pytest.mark.parametrize("name", DIGIT_BENCHMARKS)
def test_fully_biased_and_swapped(builds, name):
    s = builds[name, 0]
    for split in ("train", "val", "id"):
        assert torch.equal(s[split].bias, s[split].y), split
    sw = s["swapped"]
    assert (sw.bias != sw.y).all()
    assert sw.bias.min() >= 0 and sw.bias.max() < NUM_CLASSES
    assert len(torch.unique(sw.bias - sw.y)) > 5                # several different offsets are used


@pytest.mark.parametrize("name", DIGIT_BENCHMARKS)
def test_partial_bias(builds, name):
    for split in ("train", "val"):
        s = builds[name, "bias0.8"][split]
        frac = (s.bias == s.y).float().mean().item()
        tol = 4 * (0.8 * 0.2 / len(s)) ** 0.5                    # 4 binomial standard deviations
        assert abs(frac - 0.8) < tol, (split, frac)
        assert s.bias.min() >= 0 and s.bias.max() < NUM_CLASSES
    # the test splits do not depend on the bias option
    assert builds[name, "bias0.8"]["id"].fingerprint() == builds[name, 0]["id"].fingerprint()


@pytest.mark.parametrize("name", DIGIT_BENCHMARKS)
def test_options_and_errors(name):
    small = load_builtin(name, seed=3, size=16)
    assert small["train"].x.shape == (1078, 3, 16, 16) and small["id"].mask.shape == (539, 1, 16, 16)
    with pytest.raises(ValueError, match="bias"):
        load_builtin(name, bias=1.5)
    with pytest.raises(ValueError, match="size"):
        load_builtin(name, size=4)
    with pytest.raises(ValueError, match="seed"):
        load_builtin(name, seed=-1)
    with pytest.raises(TypeError):
        load_builtin(name, colour="red")


def test_unknown_name():
    with pytest.raises(ValueError) as err:
        load_builtin("colored-mnist")
    msg = str(err.value)
    assert "colored-mnist" in msg and all(n in msg for n in BUILTIN)


# --------------------------------------------------------------------------- colored-digits
def test_colored_digits_colours_and_masks(builds):
    s = builds["colored-digits", 0]
    palette = torch.tensor(PALETTE)
    for split in ("train", "val", "id", "swapped"):
        c = image_colours(s[split].x)
        assert torch.allclose(c, palette[s[split].bias], atol=1e-6), split
    for split in SPLITS:
        d = s[split]
        c = image_colours(d.x)
        a = intensities(d.x, c)
        # every pixel is a * colour with a in [0, 1]: the image is a tinted intensity map
        assert torch.allclose(d.x, a[:, None] * c[:, :, None, None], atol=1e-5), split
        assert a.min() >= -1e-6 and a.max() <= 1 + 1e-6
        # mask == (a > 0.5), up to float round-off right at the threshold
        disagree = d.mask[:, 0] != (a > 0.5)
        assert (disagree <= ((a - 0.5).abs() < 1e-5)).all(), split
        # black background: exactly-zero pixels are never foreground, foreground is bright
        black = (d.x == 0).all(1)
        assert black.float().mean() > 0.2 and not (black & d.mask[:, 0]).any()
        assert (a[d.mask[:, 0]] > 0.5 - 1e-5).all()


def test_colored_digits_ood_colours(builds):
    ood = builds["colored-digits", 0]["ood"]
    assert (ood.bias == -1).all()
    fg = ood.mask[:, 0]
    palette = torch.tensor(PALETTE)
    c = image_colours(ood.x)
    assert (torch.cdist(c, palette).min(1).values >= OOD_MIN_DISTANCE - 1e-6).all()
    assert (c.max(1).values >= MIN_BRIGHTNESS - 1e-6).all()
    # check the actual foreground pixels: their colour direction is the paint colour
    pix = ood.x.permute(0, 2, 3, 1)[fg]                         # (P, 3)
    img = torch.arange(len(ood))[:, None, None].expand_as(fg)[fg]
    direction = pix / pix.norm(dim=1, keepdim=True)
    assert torch.allclose(direction, c[img] / c[img].norm(dim=1, keepdim=True), atol=1e-5)
    assert len(torch.unique(c, dim=0)) > 500                    # a fresh colour per image


def test_colored_digits_debiased_colour_not_predictive(builds):
    s = builds["colored-digits", 0]
    palette = torch.tensor(PALETTE)
    deb, tr = s["train_debiased"], s["train"]
    assert (deb.bias == -1).all()
    c_deb, c_tr = image_colours(deb.x), image_colours(tr.x)
    assert (c_deb.max(1).values >= MIN_BRIGHTNESS - 1e-6).all()
    # nearest palette colour predicts the label on train, not on train_debiased
    assert (torch.cdist(c_tr, palette).argmin(1) == tr.y).float().mean() == 1.0
    assert (torch.cdist(c_deb, palette).argmin(1) == deb.y).float().mean() < 0.2
    # nor does a nearest-centroid classifier fitted on the colours themselves
    assert nearest_centroid_accuracy(c_tr, tr.y) > 0.95
    assert nearest_centroid_accuracy(c_deb, deb.y) < 0.2


# --------------------------------------------------------------------------- digits-on-scenes
def test_scene_lists():
    assert len(TRAIN_SCENES) == NUM_CLASSES and len(OOD_SCENES) >= 2
    assert len(set(SCENES)) == len(SCENES)


def test_digits_on_scenes_compositing(builds):
    cd, ds = builds["colored-digits", 0], builds["digits-on-scenes", 0]
    for split in SPLITS:
        d = ds[split]
        fg = d.mask[:, 0]
        assert (d.x.amin(1)[fg] > 0.5).all(), split             # white strokes over the mask
        # the digit intensity a is the colored-digits one: x = a on the mask (no scene in the strokes),
        # x = a + (1 - a) * bg elsewhere
        a = intensities(cd[split].x, image_colours(cd[split].x))[:, None]
        on = fg[:, None].expand_as(d.x)
        assert torch.allclose(d.x[on], a.expand_as(d.x)[on], atol=1e-5), split
        keep = ((a < 0.9) & ~fg[:, None]).expand_as(d.x)
        bg = ((d.x - a) / (1 - a).clamp_min(1e-6))[keep]
        assert bg.min() > -1e-3 and bg.max() < BACKGROUND_GAIN + 1e-3, split
    for split in ("train", "val", "train_debiased", "id", "swapped"):
        assert ds[split].bias.min() >= 0 and ds[split].bias.max() < len(TRAIN_SCENES)
    ood = ds["ood"]
    assert ood.bias.min() >= len(TRAIN_SCENES) and ood.bias.max() < len(SCENES)
    assert len(ood.bias.unique()) == len(OOD_SCENES)
    # the same digits on other scenes: identical foreground pixels, different backgrounds
    tr, deb = ds["train"], ds["train_debiased"]
    assert torch.equal(tr.mask, deb.mask)
    on = tr.mask.expand_as(tr.x)
    assert torch.equal(tr.x[on], deb.x[on]) and not torch.equal(tr.x[~on], deb.x[~on])


def background_features(s: ImageSet) -> torch.Tensor:
    """Per image, mean and std of each channel over the pixels far from the digit."""
    near = torch.nn.functional.max_pool2d(s.mask.float(), 5, stride=1, padding=2) > 0
    w = (~near).float()
    n = w.sum((2, 3)).clamp_min(1)
    mean = (s.x * w).sum((2, 3)) / n
    var = ((s.x - mean[:, :, None, None]) ** 2 * w).sum((2, 3)) / n
    return torch.cat([mean, var.sqrt()], 1)


def test_digits_on_scenes_debiased_scene_not_predictive(builds):
    s = builds["digits-on-scenes", 0]
    tr, deb = s["train"], s["train_debiased"]
    assert (deb.bias == deb.y).float().mean() < 0.2            # scene drawn independently of label
    assert len(deb.bias.unique()) == NUM_CLASSES
    assert nearest_centroid_accuracy(background_features(tr), tr.y) > 0.6
    assert nearest_centroid_accuracy(background_features(deb), deb.y) < 0.2
    # same scene index -> same photograph: the biased and debiased crops of one scene look alike
    f_tr, f_deb = background_features(tr), background_features(deb)
    cent = torch.stack([f_tr[tr.bias == k].mean(0) for k in range(NUM_CLASSES)])
    assert (torch.cdist(f_deb, cent).argmin(1) == deb.bias).float().mean() > 0.6


def test_to_rgb_float_conversions():
    import numpy as np
    gray = to_rgb_float(np.full((4, 5), 255, dtype=np.uint8))
    assert gray.shape == (3, 4, 5) and torch.all(gray == 1)
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)                  # fully transparent -> white
    assert torch.all(to_rgb_float(rgba) == 1)
    assert torch.equal(to_rgb_float(np.array([[True, False]])), torch.tensor([[1.0, 0.0]]).expand(3, 1, 2))
    with pytest.raises(ValueError):
        to_rgb_float(np.zeros((2, 2, 2), dtype=np.uint8))


# --------------------------------------------------------------------------- ImageSet
def small_set(n=4):
    return ImageSet(x=torch.rand(n, 3, 8, 8), y=torch.arange(n), mask=torch.rand(n, 1, 8, 8) > 0.5,
                    bias=torch.full((n,), -1))


def test_imageset_subset_and_fingerprint():
    s = small_set()
    assert len(s) == 4
    sub = s.subset([2, 0])
    assert torch.equal(sub.y, torch.tensor([2, 0])) and torch.equal(sub.x[1], s.x[0])
    assert len(s.subset(torch.tensor([True, False, True, True]))) == 3
    assert len(s.subset(slice(1, 3))) == 2
    assert s.subset(range(4)).fingerprint() == s.fingerprint()
    changed = small_set()
    assert changed.fingerprint() != s.fingerprint()
    with pytest.raises(IndexError):
        s.subset([4])
    with pytest.raises(ValueError):
        s.subset(torch.tensor([True, False]))


@pytest.mark.parametrize("field, value, err, word", [
    ("x", torch.rand(4, 3, 8, 8).double(), TypeError, "x"),
    ("x", torch.rand(4, 1, 8, 8), ValueError, "x"),
    ("x", torch.rand(4, 3, 8, 8) + 1, ValueError, r"\[0, 1\]"),
    ("y", torch.arange(4).int(), TypeError, "y"),
    ("y", torch.arange(5), ValueError, "y"),
    ("mask", torch.ones(4, 1, 8, 8), TypeError, "mask"),
    ("mask", torch.ones(4, 1, 8, 7, dtype=torch.bool), ValueError, "mask"),
    ("bias", torch.zeros(3, dtype=torch.int64), ValueError, "bias"),
    ("bias", [0, 0, 0, 0], TypeError, "bias"),
])
def test_imageset_validation(field, value, err, word):
    good = small_set()
    kwargs = {"x": good.x, "y": good.y, "mask": good.mask, "bias": good.bias, field: value}
    with pytest.raises(err, match=word):
        ImageSet(**kwargs)
