"""Shift augmentation (teakit.data.augment) against a pixel loop."""
import pytest
import torch

from teakit.data.augment import random_shifts, translate


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
