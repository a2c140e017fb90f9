"""The augmentations of teakit.data.augment: shifts against a pixel loop, channel orders against indexing."""
import pytest
import torch

from teakit.data.augment import (
    permute_channels,
    random_channel_orders,
    random_shifts,
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
