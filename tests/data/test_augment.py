"""The augmentations of teakit.data.augment: shifts against a pixel loop, channel orders against indexing,
background swaps and inpainting against per-image loops and invariants."""
import pytest
import torch

from teakit.data.augment import (
    background_partners,
    colour_layouts,
    dead_leaves,
    gaussian_blur,
    inpaint,
    paste,
    permute_channels,
    random_channel_orders,
    random_shifts,
    recolour,
    recolour_backgrounds,
    swap_backgrounds,
    translate,
)


def _slow_translate(x, shifts):
    out = torch.zeros_like(x)
    B, _, H, W = x.shape
    for b in range(B):
        dy, dx = shifts[b].tolist()
        for i in range(H):
            for j in range(W):
                si, sj = i - dy, j - dx
                if 0 <= si < H and 0 <= sj < W:
                    out[b, :, i, j] = x[b, :, si, sj]
    return out


def test_translate_matches_a_pixel_loop_and_inverts_in_the_interior():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 2, 7, 6, generator=g)
    shifts = random_shifts(5, 3, g)
    assert shifts.abs().max() <= 3 and shifts.shape == (5, 2)
    assert torch.equal(translate(x, shifts), _slow_translate(x, shifts))
    back = translate(translate(x, shifts), -shifts)
    assert torch.equal(back[:, :, 3:-3, 3:-3], x[:, :, 3:-3, 3:-3])
    assert translate(x, torch.zeros(5, 2, dtype=torch.long)) is x
    with pytest.raises(ValueError, match="shifts of shape"):
        translate(x, shifts[:3])
    with pytest.raises(ValueError):
        random_shifts(2, -1)


def test_permute_channels_takes_each_samples_channels_in_its_own_order():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, 4, 5, generator=g)
    orders = random_channel_orders(64, 3, g)
    assert orders.shape == (64, 3) and orders.dtype == torch.int64
    assert torch.equal(orders.sort(dim=1).values, torch.arange(3).expand(64, 3))  # each row a permutation
    assert len({tuple(o) for o in orders.tolist()}) == 6  # all six orders drawn among 64
    out = permute_channels(x, orders)
    for b in range(64):
        for c in range(3):
            assert torch.equal(out[b, c], x[b, orders[b, c]])
    # the same generator state gives the same orders; one channel is left as it is
    assert torch.equal(random_channel_orders(64, 3, torch.Generator().manual_seed(7)),
                       random_channel_orders(64, 3, torch.Generator().manual_seed(7)))
    gray = torch.randn(4, 1, 3, 3)
    assert torch.equal(permute_channels(gray, random_channel_orders(4, 1)), gray)
    with pytest.raises(ValueError, match="orders of shape"):
        permute_channels(x, orders[:3])
    with pytest.raises(ValueError, match="channels"):
        random_channel_orders(2, 0)


def _masks(batch, size, generator):
    """Random rectangles, one per image."""
    keep = torch.zeros(batch, 1, size, size, dtype=torch.bool)
    for b in range(batch):
        y0, x0 = torch.randint(0, size // 2, (2,), generator=generator).tolist()
        h, w = torch.randint(2, size // 2, (2,), generator=generator).tolist()
        keep[b, :, y0:y0 + h, x0:x0 + w] = True
    return keep


def test_inpaint_fills_only_the_hole_from_the_kept_pixels():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 16, 16, generator=g)
    hole = _masks(5, 16, g)
    out = inpaint(x, hole)
    assert torch.equal(out[~hole.expand_as(x)], x[~hole.expand_as(x)])
    # each filled value is a weighted mean of kept pixels of its own image and channel: within their range
    for b in range(5):
        for c in range(3):
            kept = x[b, c][~hole[b, 0]]
            filled = out[b, c][hole[b, 0]]
            assert filled.min() >= kept.min() - 1e-6 and filled.max() <= kept.max() + 1e-6
    # the normalised blur, written out for one image: blur of the kept pixels over blur of the indicator
    k = (~hole[:1]).float()
    sigma = 16 / 8
    expected = gaussian_blur(x[:1] * k, sigma) / gaussian_blur(k, sigma)
    assert torch.allclose(out[:1][hole[:1].expand(1, 3, 16, 16)], expected[hole[:1].expand(1, 3, 16, 16)], atol=1e-6)
    # a flat background is filled with its own colour, whatever the hole's shape
    flat = torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1).expand(5, 3, 16, 16).clone()
    assert torch.allclose(inpaint(flat, hole), flat, atol=1e-6)
    with pytest.raises(ValueError, match="bool hole"):
        inpaint(x, hole.float())


def test_swap_backgrounds_matches_a_per_image_loop():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 3, 16, 16, generator=g)
    keep = _masks(6, 16, g)
    partners = torch.tensor([3, 1, 0, 5, 4, 2])  # rows 1 and 4 keep their own background
    out = swap_backgrounds(x, keep, partners)
    for b, p in enumerate(partners.tolist()):
        if p == b:
            assert torch.equal(out[b], x[b])
            continue
        background = inpaint(x[p:p + 1], keep[p:p + 1])[0]
        expected = torch.where(keep[b], x[b], background)
        assert torch.equal(out[b][:, keep[b, 0]], x[b][:, keep[b, 0]])  # the foreground bit-identical
        assert torch.allclose(out[b], expected, atol=1e-6)  # (batched and single-image blurs may round apart)
        # the partner's own object is gone: no pixel of its foreground shows outside b's foreground
        shows = keep[p, 0] & ~keep[b, 0]
        if shows.any():
            assert not torch.equal(out[b][:, shows], x[p][:, shows])
    assert torch.equal(swap_backgrounds(x, keep, torch.arange(6)), x)
    with pytest.raises(ValueError, match="partners"):
        swap_backgrounds(x, keep, partners[:5])


def test_background_partners_are_a_permutation_at_chance_one_and_the_identity_at_zero():
    g = torch.Generator().manual_seed(2)
    assert torch.equal(background_partners(50, 0.0, g), torch.arange(50))
    assert sorted(background_partners(50, 1.0, g).tolist()) == list(range(50))
    moved = sum((background_partners(100, 0.5, g) != torch.arange(100)).sum().item() for _ in range(40))
    assert abs(moved / 4000 - 0.5) < 0.05  # about half the images (a permutation's fixed points stay)
    with pytest.raises(ValueError, match="chance"):
        background_partners(4, 1.5)


def _slow_dead_leaves(count, H, W, leaves, generator):
    """The same draws, painted disc by disc, pixel by pixel."""
    side = max(H, W)
    rmin, rmax = side / 32, side / 3
    u = torch.rand(count, leaves, generator=generator)
    radius = (rmin ** -2 - u * (rmin ** -2 - rmax ** -2)) ** -0.5
    cy = torch.rand(count, leaves, 1, 1, generator=generator) * H
    cx = torch.rand(count, leaves, 1, 1, generator=generator) * W
    out = torch.zeros(count, H, W, dtype=torch.long)
    for n in range(count):
        for k in range(leaves):
            for i in range(H):
                for j in range(W):
                    if (i + 0.5 - cy[n, k, 0, 0]) ** 2 + (j + 0.5 - cx[n, k, 0, 0]) ** 2 <= radius[n, k] ** 2:
                        out[n, i, j] = k + 1
    return out


def test_dead_leaves_match_a_disc_by_disc_painter_and_cover_the_picture():
    fast = dead_leaves(2, 12, 10, leaves=60, generator=torch.Generator().manual_seed(4))
    slow = _slow_dead_leaves(2, 12, 10, 60, torch.Generator().manual_seed(4))
    assert torch.equal(fast, slow)  # 60 discs: two chunks, so the chunking is covered
    big = dead_leaves(16, 32, 32, generator=torch.Generator().manual_seed(5))
    assert (big == 0).float().mean() < 0.15 and big.max() <= 200  # about e^-3 of the ground shows
    # radii at every scale: both a small and a large disc are the top disc somewhere
    sizes = torch.stack([torch.bincount(b.flatten(), minlength=201) for b in big])[:, 1:]
    assert ((sizes > 0) & (sizes < 10)).any() and (sizes > 150).any()


def test_colour_layouts_paint_each_disc_one_colour_within_the_datas_range():
    layouts = dead_leaves(3, 16, 16, generator=torch.Generator().manual_seed(6))
    like = torch.rand(4, 3, 16, 16) * torch.tensor([0.2, 0.5, 1.0]).view(1, 3, 1, 1) + 0.1
    pictures = colour_layouts(layouts, like, torch.Generator().manual_seed(7))
    assert pictures.shape == (3, 3, 16, 16)
    for n in range(3):
        for disc in layouts[n].unique():
            pixels = pictures[n][:, layouts[n] == disc]
            assert torch.equal(pixels, pixels[:, :1].expand_as(pixels))  # one colour per disc
    lo, hi = like.amin((0, 2, 3)).view(1, 3, 1, 1), like.amax((0, 2, 3)).view(1, 3, 1, 1)
    assert (pictures >= lo - 1e-6).all() and (pictures <= hi + 1e-6).all()
    grey = colour_layouts(layouts, like[:, :1].expand(4, 3, 16, 16), torch.Generator().manual_seed(7))
    assert torch.equal(grey, grey[:, :1].expand_as(grey)) and grey.std() > 0  # grey data: grey pictures


def test_paste_keeps_foregrounds_and_other_rows():
    g = torch.Generator().manual_seed(8)
    x = torch.rand(5, 3, 8, 8, generator=g)
    keep = _masks(5, 8, g)
    rows = torch.tensor([True, False, True, False, False])
    backgrounds = torch.rand(2, 3, 8, 8, generator=g)
    out = paste(x, keep, rows, backgrounds)
    assert torch.equal(out[~rows], x[~rows])
    for i, b in enumerate((0, 2)):
        assert torch.equal(out[b], torch.where(keep[b], x[b], backgrounds[i]))


def test_recolour_mirrors_in_the_batchs_range_then_reorders_each_row_by_a_pixel_loop():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(5, 3, 4, 4, generator=g) * torch.tensor([1.0, 0.5, 0.2]).view(1, 3, 1, 1)
    rows = torch.tensor([True, False, True, True, False])
    orders = torch.tensor([[2, 0, 1], [0, 1, 2], [1, 2, 0]])
    invert = torch.tensor([True, True, False])
    out = recolour(x, rows, orders, invert)
    lo = [x[:, c].min().item() for c in range(3)]
    hi = [x[:, c].max().item() for c in range(3)]
    for k, b in enumerate([0, 2, 3]):
        for c in range(3):
            src = orders[k, c].item()
            for i in range(4):
                for j in range(4):
                    v = x[b, src, i, j].item()
                    want = lo[src] + hi[src] - v if invert[k] else v
                    assert out[k, c, i, j].item() == pytest.approx(want, abs=1e-6)
    # no inversion in the identity order is no change; grey stays grey
    same = recolour(x, rows, torch.arange(3).expand(3, -1), torch.zeros(3, dtype=torch.bool))
    assert torch.equal(same, x[rows])
    grey = x[:, :1].expand(-1, 3, -1, -1)
    assert torch.equal(recolour(grey, rows, orders, invert), recolour(grey, rows, orders, invert)[:, :1].expand(-1, 3, -1, -1))
    with pytest.raises(ValueError, match="invert flags"):
        recolour(x, rows, orders, invert[:2])


def test_recolour_backgrounds_recolours_the_drawn_rows_behind_their_masks_only():
    g = torch.Generator().manual_seed(6)
    x = torch.rand(6, 3, 5, 5, generator=g)
    keep = torch.rand(6, 1, 5, 5, generator=g) > 0.5
    out = recolour_backgrounds(x, keep, 0.5, torch.Generator().manual_seed(1))
    # the same draws, written out: which rows, then their channel orders and mirror flags
    d = torch.Generator().manual_seed(1)
    rows = torch.rand(6, generator=d) < 0.5
    orders = torch.rand(int(rows.sum()), 3, generator=d).argsort(dim=1)
    invert = torch.rand(int(rows.sum()), generator=d) < 0.5
    assert 0 < int(rows.sum()) < 6
    new = recolour(x, rows, orders, invert)
    for k, b in enumerate(rows.nonzero().flatten().tolist()):
        assert torch.equal(out[b], torch.where(keep[b], x[b], new[k]))
    assert torch.equal(out[~rows], x[~rows])
    assert torch.equal(out[keep.expand(-1, 3, -1, -1)], x[keep.expand(-1, 3, -1, -1)])   # foregrounds kept
    assert torch.equal(recolour_backgrounds(x, keep, 0.0, torch.Generator().manual_seed(3)), x)
    with pytest.raises(ValueError, match="chance"):
        recolour_backgrounds(x, keep, 1.5)
