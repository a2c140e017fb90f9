"""Tests for the built-in Waterbirds analogue ``glyphs-on-places`` (teakit.data.glyphs_on_places)."""
import numpy as np
import pytest
import torch

from teakit.data import GLYPHS_ON_PLACES_SPLITS, ImageSet, load_builtin
from teakit.data import glyphs_on_places as G
from teakit.data.load import BIAS_IS_GROUP

SPLIT_SIZES = {"train": 3000, "val": 602, "train_debiased": 3000, "test": 2312}
TRAIN_GROUPS_095 = [2185, 115, 35, 665]   # round/land, round/water, angular/land, angular/water


@pytest.fixture(scope="module")
def full():
    """The default build (64 x 64, bias 0.95, seed 0)."""
    return load_builtin("glyphs-on-places", seed=0)


@pytest.fixture(scope="module")
def small():
    """Small builds for the reproducibility and option checks."""
    return {"0": G.build_glyphs_on_places(0, size=32), "0-again": G.build_glyphs_on_places(0, size=32),
            "1": G.build_glyphs_on_places(1, size=32), "bias0.8": G.build_glyphs_on_places(0, size=32, bias=0.8)}


def counts(s: ImageSet) -> list[int]:
    return torch.bincount(s.bias, minlength=4).tolist()


def place_of(s: ImageSet) -> torch.Tensor:
    return s.bias % 2


def far_from_glyph(s: ImageSet) -> torch.Tensor:
    """(N, 1, H, W) True on pixels at least 3 px away from the glyph."""
    return ~(torch.nn.functional.max_pool2d(s.mask.float(), 5, stride=1, padding=2) > 0)


def background_features(s: ImageSet) -> np.ndarray:
    """Per image, mean and std of each channel over the pixels far from the glyph."""
    w = far_from_glyph(s).float()
    n = w.sum((2, 3)).clamp_min(1)
    mean = (s.x * w).sum((2, 3)) / n
    var = ((s.x - mean[:, :, None, None]) ** 2 * w).sum((2, 3)) / n
    return torch.cat([mean, var.sqrt()], 1).numpy()


# --------------------------------------------------------------------------- layout
def test_registered():
    from teakit.data.names import BUILTIN, DATASETS
    assert "glyphs-on-places" in BUILTIN and "glyphs-on-places" in DATASETS
    assert "glyphs-on-places" in BIAS_IS_GROUP          # GroupDRO takes the bias attribute as the group


def test_shapes_dtypes_range(full):
    assert tuple(full) == GLYPHS_ON_PLACES_SPLITS
    for name, s in full.items():
        n = SPLIT_SIZES[name]
        assert isinstance(s, ImageSet) and len(s) == n, name
        assert s.x.shape == (n, 3, 64, 64) and s.x.dtype == torch.float32
        assert s.mask.shape == (n, 1, 64, 64) and s.mask.dtype == torch.bool
        assert s.y.dtype == torch.int64 and s.bias.dtype == torch.int64
        assert 0.0 <= s.x.min().item() and s.x.max().item() <= 1.0
        assert set(s.y.unique().tolist()) == {0, 1}
        assert torch.equal(s.bias // 2, s.y), name           # group = 2 * y + place
        assert s.bias.min() >= 0 and s.bias.max() <= 3
        area = s.mask.float().mean((1, 2, 3))
        assert area.min() > 0.02 and area.max() < 0.5, name  # every image has a glyph, none fills it
        assert 0.08 < area.mean() < 0.25, name
        # the glyph lies inside the image: the outermost ring of pixels is (almost) never covered
        ring = s.mask[:, 0, [0, -1], :].float().mean() + s.mask[:, 0, :, [0, -1]].float().mean()
        assert ring < 0.01, name


def test_group_counts(full):
    assert counts(full["train"]) == TRAIN_GROUPS_095
    assert counts(full["val"]) == list(G.VAL_GROUP_COUNTS) == [234, 234, 67, 67]
    assert counts(full["test"]) == list(G.TEST_GROUP_COUNTS) == [900, 900, 256, 256]
    tr = full["train"]
    for k in (0, 1):                                        # 95 % of each class on its own place
        own = (place_of(tr)[tr.y == k] == k).float().mean().item()
        assert abs(own - 0.95) < 0.005, (k, own)
    n0, n1 = (tr.y == 0).sum().item(), (tr.y == 1).sum().item()
    assert 3.0 <= n0 / n1 <= 3.5                            # ~3.3 : 1 as in Waterbirds
    for split in ("val", "test"):
        s = full[split]
        c = counts(s)
        assert c[0] == c[1] and c[2] == c[3], split          # balanced over place within each class
        assert 3.3 <= c[0] / c[2] <= 3.7, split              # ~3.5 : 1 as in Waterbirds' val / test
    # the groups are mixed through each split, so --limit keeps every group
    for split in GLYPHS_ON_PLACES_SPLITS:
        assert len(full[split].bias[:200].unique()) == 4, split


def test_bias_option(small):
    tr = small["bias0.8"]["train"]
    assert counts(tr) == [1840, 460, 140, 560]               # round(0.8 * 2300), round(0.8 * 700)
    for split in ("val", "test"):                            # only the train split depends on bias
        assert small["bias0.8"][split].fingerprint() == small["0"][split].fingerprint()
    assert small["bias0.8"]["train"].fingerprint() != small["0"]["train"].fingerprint()
    assert torch.equal(small["bias0.8"]["train"].mask, small["0"]["train"].mask)    # same glyphs


def test_options_and_errors():
    s = G.build_glyphs_on_places(2, size=16, bias=1.0)
    assert s["train"].x.shape == (3000, 3, 16, 16) and s["test"].mask.shape == (2312, 1, 16, 16)
    assert counts(s["train"]) == [2300, 0, 0, 700]           # bias 1: no minority group in train
    with pytest.raises(ValueError, match="bias"):
        load_builtin("glyphs-on-places", bias=1.5)
    with pytest.raises(ValueError, match="size"):
        load_builtin("glyphs-on-places", size=12)
    with pytest.raises(ValueError, match="seed"):
        load_builtin("glyphs-on-places", seed=-1)
    with pytest.raises(TypeError):
        load_builtin("glyphs-on-places", colour="red")


# --------------------------------------------------------------------------- determinism
def test_same_seed_bit_identical_other_seed_differs(small):
    a, b, c = small["0"], small["0-again"], small["1"]
    for split in GLYPHS_ON_PLACES_SPLITS:
        assert torch.equal(a[split].x, b[split].x) and torch.equal(a[split].mask, b[split].mask), split
        assert torch.equal(a[split].y, b[split].y) and torch.equal(a[split].bias, b[split].bias), split
        assert a[split].fingerprint() == b[split].fingerprint()
        assert a[split].fingerprint() != c[split].fingerprint(), split
        assert not torch.equal(a[split].bias, c[split].bias), split      # another order of the groups
        if split != "train_debiased":                                     # (there the place is drawn per image)
            assert counts(a[split]) == counts(c[split]), split           # the same group counts


# --------------------------------------------------------------------------- compositing
def test_masks_exact(small):
    """On the mask: one colour per image (the glyph's), never the scene; off the mask:
    exactly the background crop of the image's place."""
    seed, size = 0, 32
    for name, split in (("train", G._TRAIN), ("test", G._TEST), ("train_debiased", G._DEBIAS)):
        s = small["0"][name]
        bg = G.backgrounds(place_of(s).numpy(), size, G.rng_for(seed, 100 * G._BACKGROUND + split))
        m = s.mask.expand_as(s.x)
        assert torch.equal(s.x[~m], bg[~m]), name                         # non-mask pixels = the scene crop
        fg = s.x.permute(0, 2, 3, 1)[s.mask[:, 0]]                         # (P, 3) mask pixels
        img = torch.arange(len(s))[:, None, None].expand(-1, size, size)[s.mask[:, 0]]
        at = s.mask.flatten(1).float().argmax(1)                          # each image's first mask pixel
        first = s.x.flatten(2)[torch.arange(len(s)), :, at]               # (N, 3): its colour
        assert torch.equal(fg, first[img]), name                          # a single colour per glyph
        differs = (fg != bg.permute(0, 2, 3, 1)[s.mask[:, 0]]).any(1)
        assert differs.float().mean() > 0.999, name                        # the glyph hides the scene
        assert not torch.equal(s.x, bg)


def test_backgrounds_are_crops_of_their_place(monkeypatch):
    """Without colour jitter, each background is a window (maybe mirrored) of a photo of its place."""
    monkeypatch.setattr(G, "BRIGHTNESS", (1.0, 1.0))
    monkeypatch.setattr(G, "CONTRAST", (1.0, 1.0))
    monkeypatch.setattr(G, "SATURATION", (1.0, 1.0))
    size = 16
    place = np.array([0, 1, 1, 0])
    bg = G.backgrounds(place, size, np.random.default_rng(5)).numpy()
    photos = G.place_photos(size)

    def found_in(crop, family):
        for photo in family:
            windows = np.lib.stride_tricks.sliding_window_view(photo.numpy(), (3, size, size))[0]
            for c in (crop, crop[:, :, ::-1]):
                if (np.abs(windows - c).max((2, 3, 4)) < 1e-5).any():      # jitter off: exact up to rounding
                    return True
        return False
    for i, k in enumerate(place):
        assert found_in(bg[i], photos[k]), i
        assert not found_in(bg[i], photos[1 - k]), i


def test_train_debiased(small):
    tr, deb = small["0"]["train"], small["0"]["train_debiased"]
    assert torch.equal(tr.y, deb.y) and torch.equal(tr.mask, deb.mask)
    on = tr.mask.expand_as(tr.x)
    assert torch.equal(tr.x[on], deb.x[on]) and not torch.equal(tr.x[~on], deb.x[~on])
    for k in (0, 1):                                                     # place independent of the class
        share = (place_of(deb)[deb.y == k] == 1).float().mean().item()
        n = (deb.y == k).sum().item()
        assert abs(share - 0.5) < 4 * (0.25 / n) ** 0.5, (k, share)


# --------------------------------------------------------------------------- signal
def test_the_place_shortcut_is_real(small):
    """A linear classifier on background statistics alone fits the training labels
    (95 % of them follow the place) and fails on the minority groups of test."""
    from sklearn.linear_model import LogisticRegression

    tr, te = small["0"]["train"], small["0"]["test"]
    clf = LogisticRegression(max_iter=1000).fit(background_features(tr), tr.y.numpy())
    assert clf.score(background_features(tr), tr.y.numpy()) > 0.9
    pred = clf.predict(background_features(te))
    correct = pred == te.y.numpy()
    g = te.bias.numpy()
    acc = [correct[g == k].mean() for k in range(4)]
    assert acc[0] > 0.9 and acc[3] > 0.9, acc                # majority groups: place = class
    assert acc[1] < 0.2 and acc[2] < 0.2, acc                # minority groups: the shortcut is wrong
    # the same features say the place almost perfectly
    clf = LogisticRegression(max_iter=1000).fit(background_features(tr), place_of(tr).numpy())
    assert clf.score(background_features(te), place_of(te).numpy()) > 0.95


def test_the_class_is_in_the_glyph(small):
    """On ground-truth-masked images (background zero), a linear probe of the glyph's
    pixels beats chance on the balanced test set; it is no perfect one-liner either, and the
    masked pixels say nothing of the place."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    def masked(s):
        return torch.nn.functional.avg_pool2d(s.x * s.mask, 4).flatten(1).numpy()   # (N, 3 * 8 * 8)
    tr, te = small["0"]["train"], small["0"]["test"]
    clf = LogisticRegression(max_iter=300, class_weight="balanced").fit(masked(tr), tr.y.numpy())
    bacc = balanced_accuracy_score(te.y.numpy(), clf.predict(masked(te)))
    assert 0.6 < bacc < 0.95, bacc
    # within each class, the masked pixels do not tell the place (test: balanced over place)
    for k in (0, 1):
        sel = (te.y == k).numpy()
        half = np.arange(sel.sum()) % 2 == 0
        xs, ps = masked(te)[sel], place_of(te).numpy()[sel]
        probe = LogisticRegression(max_iter=300).fit(xs[half], ps[half])
        assert probe.score(xs[~half], ps[~half]) < 0.6, k


def test_glyph_templates():
    templates, extent, label = G.glyph_templates()
    n_fonts = len(G.FONT_FILES)
    assert templates.shape == (len(G.ROUND_CHARS + G.ANGULAR_CHARS) * n_fonts, 1, G.TEMPLATE_SIZE, G.TEMPLATE_SIZE)
    assert label.tolist() == [0] * len(G.ROUND_CHARS) * n_fonts + [1] * len(G.ANGULAR_CHARS) * n_fonts
    assert (extent > 20).all() and (extent < G.TEMPLATE_SIZE - 4).all()
    assert not set(G.ROUND_CHARS) & set(G.ANGULAR_CHARS)
    # every template holds a glyph with full-coverage pixels and differs from every other
    assert (templates.amax((1, 2, 3)) > 0.99).all()
    flat = templates.flatten(1)
    assert len(torch.unique(flat, dim=0)) == len(flat)
