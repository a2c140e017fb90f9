"""Foreign scenes: pictures no benchmark shows, cut into seeded crops; composites put each image's
foreground on a crop of every one of them."""
import pytest
import torch

from teakit.data import digits_on_scenes, glyphs_on_places, letters_on_scenes
from teakit.data.digits_on_scenes import load_scene
from teakit.data.foreign_scenes import FOREIGN_SCENES, SCALE, foreign_backgrounds, foreign_composites

N = len(FOREIGN_SCENES)


def test_no_benchmark_shows_a_foreign_scene():
    shown = set(digits_on_scenes.SCENES) | set(letters_on_scenes.SCENES)
    shown |= {s for place in glyphs_on_places.PLACE_SCENES for s in place}
    assert len(shown) > 15 and not shown & set(FOREIGN_SCENES)


def _is_window_of(crop, scene):
    """Whether ``crop`` (3, s, s) equals some s x s window of ``scene`` (3, H, W), position by position."""
    s = crop.shape[1]
    for top in range(scene.shape[1] - s + 1):
        for left in range(scene.shape[2] - s + 1):
            if torch.equal(scene[:, top:top + s, left:left + s], crop):
                return True
    return False


def test_backgrounds_are_seeded_windows_of_the_scenes_in_turn():
    size = 6
    crops, which = foreign_backgrounds(2 * N + 1, size, seed=3)
    assert crops.shape == (2 * N + 1, 3, size, size) and list(which) == [i % N for i in range(2 * N + 1)]
    scenes = [load_scene(name, SCALE * size) for name in FOREIGN_SCENES]
    assert all(_is_window_of(c, scenes[k]) for c, k in zip(crops, which))
    assert torch.equal(foreign_backgrounds(2 * N + 1, size, seed=3)[0], crops)
    assert not torch.equal(foreign_backgrounds(2 * N + 1, size, seed=4)[0], crops)
    with pytest.raises(ValueError, match="count=-1"):
        foreign_backgrounds(-1, size)


def _written_out(x, keep, seed=0):
    """Image b on scene k: its foreground, and crop ``b * N + k`` of the backgrounds elsewhere."""
    crops, which = foreign_backgrounds(N * len(x), x.shape[2], seed)
    out = torch.empty(N * len(x), *x.shape[1:])
    for k in range(N):
        for b in range(len(x)):
            assert which[b * N + k] == k
            for c in range(3):
                for i in range(x.shape[2]):
                    for j in range(x.shape[3]):
                        out[k * len(x) + b, c, i, j] = x[b, c, i, j] if keep[b, 0, i, j] else crops[b * N + k, c, i, j]
    return out


def test_composites_put_each_foreground_on_every_scene():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 8, 8, generator=g)
    keep = torch.rand(3, 1, 8, 8, generator=g) > 0.6
    out = foreign_composites(x, keep)
    assert torch.equal(out, _written_out(x, keep))
    # the foreground is kept on every scene, and the background is no longer the image's
    assert torch.equal(out.view(N, 3, 3, 8, 8)[:, keep.expand(-1, 3, -1, -1)], x[keep.expand(-1, 3, -1, -1)].repeat(N, 1))
    assert not torch.equal(out[:3], x)


def test_composites_are_grey_for_grey_data_and_normalised_like_the_data():
    g = torch.Generator().manual_seed(1)
    grey = torch.rand(2, 1, 8, 8, generator=g).expand(-1, 3, -1, -1)
    keep = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    out = foreign_composites(grey, keep)
    colour = _written_out(grey, keep)
    assert torch.allclose(out, colour.mean(1, keepdim=True).expand_as(colour))
    assert not torch.equal(colour[:, :1].expand_as(colour), colour)  # the scenes had colour to lose

    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    x = torch.rand(2, 3, 8, 8, generator=g)
    normed = foreign_composites(x, keep, norm=(mean, std))
    expected = (_written_out(x, keep) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(normed, expected, atol=1e-6)


def test_composites_refuse_what_they_cannot_compose():
    with pytest.raises(ValueError, match=r"square 3-channel"):
        foreign_composites(torch.rand(2, 1, 8, 8), torch.zeros(2, 1, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool keep"):
        foreign_composites(torch.rand(2, 3, 8, 8), torch.zeros(2, 1, 8, 8))
