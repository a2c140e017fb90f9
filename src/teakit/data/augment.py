"""Random augmentations that TEA applies identically to the student's and the teacher's input.

``random_shifts`` draws one integer offset (dy, dx) in [-s, s]² per sample;
``translate`` moves each sample by its offset and fills the uncovered border
with zeros.  ``random_channel_orders`` draws one permutation of the C channels
per sample; ``permute_channels`` reorders each sample's channels by it (with
RGB images: a colour that marks a class in training no longer does).
``background_partners`` and ``swap_backgrounds`` put an image's foreground (a
segmenter teacher's own mask of it) on another image's background, whose
foreground ``inpaint`` removes first; ``dead_leaves`` draws synthetic
layouts, ``colour_layouts`` paints them and ``paste`` puts foregrounds on
them; ``recolour`` mirrors and reorders an image's colours (for its
background); ``NewBackgrounds`` applies the three kinds of new background.  All need the live teacher: the teacher
explains the augmented image itself (with max-pooling, the heatmap of a moved
image is not the moved heatmap, so cached maps are never augmented).
``gaussian_blur`` is the blur that ``inpaint`` and the segmenter's ``blur``
fill use.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_shifts(batch: int, max_shift: int, generator=None) -> torch.Tensor:
    """(batch, 2) integer offsets (dy, dx), each uniform in [-max_shift, max_shift]."""
    if max_shift < 0:
        raise ValueError(f"max_shift={max_shift} must be >= 0")
    return torch.randint(-max_shift, max_shift + 1, (batch, 2), generator=generator)


def translate(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Move sample b of ``x`` (B, C, H, W) down by shifts[b, 0] and right by shifts[b, 1]."""
    if x.dim() != 4 or shifts.shape != (x.shape[0], 2):
        raise ValueError(f"translate: x {tuple(x.shape)} needs shifts of shape ({x.shape[0]}, 2), "
                         f"got {tuple(shifts.shape)}")
    s = int(shifts.abs().max()) if len(shifts) else 0
    if s == 0:
        return x
    H, W = x.shape[-2:]
    padded = F.pad(x, (s, s, s, s))
    return torch.stack([padded[b, :, s - int(dy):s - int(dy) + H, s - int(dx):s - int(dx) + W]
                        for b, (dy, dx) in enumerate(shifts.tolist())])


def random_channel_orders(batch: int, channels: int, generator=None) -> torch.Tensor:
    """(batch, channels) int64: row b a uniformly random permutation of 0..channels-1."""
    if channels < 1:
        raise ValueError(f"channels={channels} must be >= 1")
    return torch.rand(batch, channels, generator=generator).argsort(dim=1)


def permute_channels(x: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H, W) with sample b's channel c taken from its channel ``orders[b, c]``."""
    if x.dim() != 4 or orders.shape != x.shape[:2]:
        raise ValueError(f"permute_channels: x {tuple(x.shape)} needs orders of shape {tuple(x.shape[:2])}, "
                         f"got {tuple(orders.shape)}")
    return x.gather(1, orders.to(x.device)[:, :, None, None].expand_as(x))


def recolour(x: torch.Tensor, rows: torch.Tensor, orders: torch.Tensor, invert: torch.Tensor) -> torch.Tensor:
    """The images of ``rows`` ((B,) bool) of ``x`` (B, C, H, W), recoloured one by one: where
    ``invert`` (one flag per True row), each channel mirrored within that channel's range over the
    whole batch (v -> lo + hi - v: the values stay in the data's range, and grey stays grey); then the
    channels in the order ``orders`` (one row per True row, as :func:`permute_channels` takes them).
    Returns (rows.sum(), C, H, W)."""
    n = int(rows.sum())
    if invert.shape != (n,):
        raise ValueError(f"recolour: {tuple(invert.shape)} invert flags for {n} rows")
    lo, hi = x.amin((0, 2, 3), keepdim=True), x.amax((0, 2, 3), keepdim=True)
    picked = x[rows]
    mirrored = torch.where(invert.to(x.device)[:, None, None, None], lo + hi - picked, picked)
    return permute_channels(mirrored, orders)


def recolour_backgrounds(x: torch.Tensor, keep: torch.Tensor, chance: float, generator=None) -> torch.Tensor:
    """``x`` with each image's background (outside its ``keep`` mask, (B, 1, H, W) bool) recoloured by
    :func:`recolour` with probability ``chance`` (per image: mirrored with chance 1/2, then its channels
    in a random order; draws from ``generator``); foregrounds and the other images unchanged."""
    if not 0.0 <= chance <= 1.0:
        raise ValueError(f"chance={chance} must lie in [0, 1]")
    rows = torch.rand(x.shape[0], generator=generator) < chance
    n = int(rows.sum())
    orders, invert = random_channel_orders(n, x.shape[1], generator), torch.rand(n, generator=generator) < 0.5
    rows = rows.to(x.device)
    return paste(x, keep, rows, recolour(x, rows, orders, invert))


def _gaussian_kernel(sigma: float, radius: int, like: torch.Tensor) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, device=like.device, dtype=like.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur per channel with reflect padding.

    The kernel radius is ceil(3σ), cut to side - 1 along a short side (reflect
    padding needs it; the cut kernel is renormalised).
    """
    c, (h, w) = x.shape[1], x.shape[2:]
    rw = min(math.ceil(3 * sigma), w - 1)
    rh = min(math.ceil(3 * sigma), h - 1)
    kw = _gaussian_kernel(sigma, rw, x).view(1, 1, 1, -1).expand(c, 1, 1, -1)
    kh = _gaussian_kernel(sigma, rh, x).view(1, 1, -1, 1).expand(c, 1, -1, 1)
    x = F.conv2d(F.pad(x, (rw, rw, 0, 0), mode="reflect"), kw, groups=c)
    return F.conv2d(F.pad(x, (0, 0, rh, rh), mode="reflect"), kh, groups=c)


def inpaint(x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H, W) with the pixels where ``hole`` (B, 1, H, W, bool) is True filled from the
    rest of the image: a Gaussian blur (σ = max(H, W) / 8) of the kept pixels, divided by the same
    blur of the kept-pixel indicator (normalised convolution); where no kept pixel is near, each
    image's mean kept colour.  Pixels outside the hole are returned unchanged."""
    _check_mask("inpaint", x, hole, "hole")
    kept = (~hole).to(x.dtype)
    sigma = max(x.shape[2:]) / 8
    weight = gaussian_blur(kept, sigma)
    blurred = gaussian_blur(x * kept, sigma) / weight.clamp_min(1e-6)
    mean = (x * kept).sum((2, 3), keepdim=True) / kept.sum((2, 3), keepdim=True).clamp_min(1.0)
    fill = torch.where(weight > 1e-3, blurred, mean.expand_as(x))
    return torch.where(hole, fill, x)


def background_partners(batch: int, chance: float, generator=None) -> torch.Tensor:
    """(batch,) int64: for each image, the batch row whose background it takes: with probability
    ``chance`` a row of one random permutation of the batch, else its own row (no change)."""
    if not 0.0 <= chance <= 1.0:
        raise ValueError(f"chance={chance} must lie in [0, 1]")
    perm = torch.randperm(batch, generator=generator)
    chosen = torch.rand(batch, generator=generator) < chance
    return torch.where(chosen, perm, torch.arange(batch))


def swap_backgrounds(x: torch.Tensor, keep: torch.Tensor, partners: torch.Tensor) -> torch.Tensor:
    """Image b's foreground (its ``keep`` mask, (B, 1, H, W) bool) on the background of image
    ``partners[b]``, whose own foreground is first :func:`inpaint`-ed away, so no second object
    shows.  Rows with ``partners[b] == b`` are returned unchanged."""
    _check_mask("swap_backgrounds", x, keep)
    if partners.shape != (x.shape[0],):
        raise ValueError(f"swap_backgrounds: {len(partners)} partners for a batch of {x.shape[0]}")
    moved = (partners != torch.arange(len(partners))).to(x.device)
    if not bool(moved.any()):
        return x
    p = partners.to(x.device)[moved]
    return paste(x, keep, moved, inpaint(x[p], keep[p]))


class NewBackgrounds:
    """Foregrounds (cut by a ``keep`` mask) on new backgrounds, three kinds in this order, each with its
    chance per image: another image's background (``swap``: :func:`swap_backgrounds`), a synthetic
    dead-leaves picture (``synthetic``: one bank of ``layouts`` :func:`dead_leaves` layouts per image
    size, seeded 0 and made at first use, painted in new colours at every call by
    :func:`colour_layouts`), then the background recoloured (``recolour``: :func:`recolour_backgrounds`).
    The draws come from ``generator`` in that order; a kind whose chance is 0 draws nothing.  Used alike
    by TEA's training images, the segmenter's U-Net and its classifier."""

    def __init__(self, swap: float = 0.0, synthetic: float = 0.0, recolour: float = 0.0, layouts: int = 256):
        for name, value in (("swap", swap), ("synthetic", synthetic), ("recolour", recolour)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name}={value!r}: expected a probability in [0, 1]")
        self.swap, self.synthetic, self.recolour = float(swap), float(synthetic), float(recolour)
        self.layouts, self._bank = layouts, {}

    def __bool__(self) -> bool:
        return bool(self.swap or self.synthetic or self.recolour)

    def bank(self, height: int, width: int) -> torch.Tensor:
        if (height, width) not in self._bank:
            self._bank[height, width] = dead_leaves(self.layouts, height, width,
                                                    generator=torch.Generator().manual_seed(0))
        return self._bank[height, width]

    def __call__(self, x: torch.Tensor, keep: torch.Tensor, generator=None) -> torch.Tensor:
        if self.swap > 0:
            x = swap_backgrounds(x, keep, background_partners(len(x), self.swap, generator))
        if self.synthetic > 0:
            rows = torch.rand(x.shape[0], generator=generator) < self.synthetic
            layouts = self.bank(*x.shape[2:])
            pick = torch.randint(len(layouts), (int(rows.sum()),), generator=generator)
            x = paste(x, keep, rows.to(x.device), colour_layouts(layouts[pick], x, generator))
        if self.recolour > 0:
            x = recolour_backgrounds(x, keep, self.recolour, generator)
        return x


def dead_leaves(count: int, height: int, width: int, leaves: int = 200, generator=None) -> torch.Tensor:
    """``count`` "dead leaves" layouts, (count, H, W) int64: ``leaves`` discs dropped one on another
    at uniform centres, with radii of density ∝ r⁻³ between 1/32 and 1/3 of the side (edges at every
    scale, as in natural images; 200 discs cover the picture about three times over, at any size);
    each pixel holds the number (1 … leaves) of the last disc dropped on it, 0 where none fell.
    :func:`colour_layouts` paints them."""
    side = max(height, width)
    rmin, rmax = side / 32, side / 3
    u = torch.rand(count, leaves, generator=generator)
    radius = (rmin ** -2 - u * (rmin ** -2 - rmax ** -2)) ** -0.5
    cy = torch.rand(count, leaves, 1, 1, generator=generator) * height
    cx = torch.rand(count, leaves, 1, 1, generator=generator) * width
    yy = torch.arange(height, dtype=torch.float32).view(1, 1, height, 1) + 0.5
    xx = torch.arange(width, dtype=torch.float32).view(1, 1, 1, width) + 0.5
    top = torch.zeros(count, height, width, dtype=torch.long)
    for k in range(0, leaves, 50):  # in chunks, to bound the (count, chunk, H, W) memory
        s = slice(k, k + 50)
        inside = (yy - cy[:, s]) ** 2 + (xx - cx[:, s]) ** 2 <= radius[:, s, None, None] ** 2
        number = torch.arange(k + 1, k + 1 + inside.shape[1]).view(1, -1, 1, 1)
        top = torch.maximum(top, (inside * number).amax(1))
    return top


def colour_layouts(layouts: torch.Tensor, like: torch.Tensor, generator=None) -> torch.Tensor:
    """Pictures (n, C, H, W) on ``like``'s device and dtype from ``layouts`` (n, H, W) int64 (as
    :func:`dead_leaves` gives): one colour per disc number, each channel uniform between ``like``'s
    per-channel minimum and maximum, so the pictures share the data's value range; grey (equal
    channels) when every image of ``like`` (B, C, H, W) is grey.  Colours are drawn on the CPU."""
    n, (H, W), C = layouts.shape[0], layouts.shape[1:], like.shape[1]
    lo, hi = like.amin((0, 2, 3)).cpu(), like.amax((0, 2, 3)).cpu()
    grey = C > 1 and bool((like == like[:, :1]).all())
    discs = int(layouts.max()) + 1 if layouts.numel() else 1
    colour = torch.rand(n, discs, 1 if grey else C, generator=generator).expand(-1, -1, C)
    colour = lo + colour * (hi - lo)
    picture = colour.gather(1, layouts.reshape(n, H * W, 1).expand(-1, -1, C))
    return picture.view(n, H, W, C).permute(0, 3, 1, 2).to(like.device, like.dtype)


def paste(x: torch.Tensor, keep: torch.Tensor, rows: torch.Tensor, backgrounds: torch.Tensor) -> torch.Tensor:
    """``x`` with each image of ``rows`` ((B,) bool) put on its own entry of ``backgrounds`` (one per
    True row, in order) outside its ``keep`` mask; its foreground and every other row unchanged."""
    _check_mask("paste", x, keep)
    out = x.clone()
    out[rows] = torch.where(keep[rows], x[rows], backgrounds)
    return out


def _check_mask(func: str, x: torch.Tensor, mask: torch.Tensor, what: str = "keep") -> None:
    if mask.dtype != torch.bool or mask.shape != (x.shape[0], 1, *x.shape[2:]):
        raise ValueError(f"{func}: x {tuple(x.shape)} needs a bool {what} of shape "
                         f"{(x.shape[0], 1, *x.shape[2:])}, got {mask.dtype} {tuple(mask.shape)}")
