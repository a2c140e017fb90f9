"""Tests for the held-out benchmark ``letters-on-scenes`` (teakit.data.letters_on_scenes)."""
import pytest
import torch

from teakit.data import SPLITS, load_builtin
from teakit.data import letters_on_scenes as L

SIZES = {"train": 3000, "val": 500, "train_debiased": 3000, "id": 1000, "ood": 1000, "swapped": 1000}


@pytest.fixture(scope="module")
def full():
    return load_builtin("letters-on-scenes", seed=0)


def test_registered_as_held_out():
    from teakit.data.names import BUILTIN, HELD_OUT
    from teakit.methods import BENCHMARKS
    assert "letters-on-scenes" in BUILTIN and "letters-on-scenes" in HELD_OUT
    assert "letters-on-scenes" not in BENCHMARKS   # no demo, so no choice of the demo's looks at it


def test_splits_sizes_and_classes(full):
    assert tuple(full) == SPLITS
    for name, s in full.items():
        assert s.x.shape == (SIZES[name], 3, 32, 32) and s.x.dtype == torch.float32, name
        assert 0.0 <= s.x.min() and s.x.max() <= 1.0
        assert s.mask.shape == (SIZES[name], 1, 32, 32) and s.mask.dtype == torch.bool
        assert torch.bincount(s.y, minlength=10).tolist() == [SIZES[name] // 10] * 10, name
        area = s.mask.float().mean((1, 2, 3))
        assert (area > 0.02).all() and (area < 0.6).all(), name


def test_scene_shortcut_and_shifted_scenes(full):
    for name in ("train", "val", "id"):
        assert torch.equal(full[name].bias, full[name].y), name   # bias 1.0: the class's own scene
    assert not (full["swapped"].bias == full["swapped"].y).any() and (full["swapped"].bias < 10).all()
    ood = full["ood"].bias
    assert ((ood >= 10) & (ood < len(L.SCENES))).all() and len(ood.unique()) == len(L.OOD_SCENES)
    deb = full["train_debiased"]
    assert torch.equal(deb.y, full["train"].y) and torch.equal(deb.mask, full["train"].mask)
    assert (deb.bias == deb.y).float().mean() < 0.2 and (deb.bias < 10).all()
    # the test splits share their letters: same labels and masks, other scenes
    for name in ("ood", "swapped"):
        assert torch.equal(full[name].y, full["id"].y) and torch.equal(full[name].mask, full["id"].mask)
    # bias 0.8: about a fifth of the train letters on another class's scene
    small = L.build_letters_on_scenes(0, size=16, bias=0.8)["train"]
    assert 0.15 < (small.bias != small.y).float().mean() < 0.25


def test_hard_compositing_and_scene_identity(full):
    tr, deb = full["train"], full["train_debiased"]
    m = tr.mask.expand_as(tr.x)
    # on the mask every pixel is the letter's one colour, the same on both scenes
    assert torch.equal(tr.x[m], deb.x[m])
    colour = (tr.x * tr.mask).sum((2, 3)) / tr.mask.sum((2, 3))
    assert torch.allclose(tr.x * tr.mask, colour[:, :, None, None] * tr.mask, atol=1e-6)
    # off the mask the pixels are the scene: its mean colour tells the scene (so the class) apart
    bg = (tr.x * ~tr.mask).sum((2, 3)) / (~tr.mask).sum((2, 3))
    centroids = torch.stack([bg[tr.bias == k].mean(0) for k in range(10)])
    nearest = torch.cdist(bg, centroids).argmin(1)
    assert (nearest == tr.bias).float().mean() > 0.6


def test_letters_are_the_classes_and_builds_are_seeded():
    from teakit.data.glyphs_on_places import FONT_FILES, glyph_templates
    _, _, label = glyph_templates(tuple(L.LETTERS))
    assert torch.bincount(label).tolist() == [len(FONT_FILES)] * 10
    a, b, c = (L.build_letters_on_scenes(s, size=16) for s in (0, 0, 1))
    for name in SPLITS:
        assert torch.equal(a[name].x, b[name].x) and torch.equal(a[name].y, b[name].y), name
    assert not torch.equal(a["train"].x, c["train"].x)
    with pytest.raises(ValueError, match="letters-on-scenes"):
        L.build_letters_on_scenes(0, size=8)
