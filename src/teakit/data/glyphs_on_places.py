"""``glyphs-on-places``: a Waterbirds-shaped benchmark (two classes, two places,
a 95 % place shortcut, rare minority groups) built in memory from data that
ship with the installed packages.

Foreground ("birds"): one letter or digit rendered with a font that ships with
matplotlib (``mpl-data/fonts/ttf``: DejaVu Sans / Serif / Sans Mono in several
weights and slants, STIX General), drawn from a family of characters per class:

* class 0 (``round``, the "landbird", majority): only curved strokes,
  ``ROUND_CHARS`` = O C G Q S o c e s 0 3 6 8 9;
* class 1 (``angular``, the "waterbird", minority): only straight strokes,
  ``ANGULAR_CHARS`` = A K M N V W X Z k v w x z 4 7.

Each glyph gets a uniformly random character of its class, font, extent
(its larger side ``GLYPH_EXTENT`` = 0.45..0.75 of the image side), rotation
(``MAX_ROTATION`` = +-30 degrees), position (inside the image; a glyph too large for its rotation is centred) and colour
(hue uniform, saturation 0.5..1, value 0.6..1, independent of the class).
Glyph templates are rendered once per process with Pillow's FreeType at 80 px
(coverage maps); an image's glyph is the template warped by its affine transform
(bilinear ``grid_sample``) onto a grid ``max(2, ceil(64 / size))`` times finer
than the image and box-averaged back, which gives the pixel coverage; the mask
is ``coverage > 0.5``.  Compositing is hard:

    pixel = glyph colour     on the mask
    pixel = background       elsewhere

so the mask pixels carry nothing of the scene (a perfect mask removes the
shortcut) and every other pixel is exactly the background crop.

Places (the bias attribute's second half): two families of ``skimage.data``
photographs (all load without a download), ``PLACES`` = (``land``, ``water``):

* place 0 ``land``: grass, gravel, brick, coffee, chelsea -- warm, textured;
* place 1 ``water``: hubble_deep_field, rocket, moon, coins, clock -- dark /
  cool, smooth.

Grayscale photos are toned with their family's ``TINTS`` colour (earthy for
land, blue for water).  A background is a ``size`` x ``size`` crop of a
uniformly random photo of the image's place, the photo resized so its short
side is 2, 3 or 4 x ``size`` (uniform), at a uniformly random position,
mirrored left-right with probability 1/2, then colour-jittered (brightness and
contrast x 0.75..1.25, saturation x 0.7..1.3; clamped to [0, 1]).

Splits (group ``g = 2 * y + place``, as the Waterbirds reader; ``bias`` = g):

* ``train`` (3,000): ``TRAIN_CLASS_COUNTS`` = 2,300 round / 700 angular
  (~3.3 : 1, as Waterbirds' 3,682 : 1,113); ``round(bias * n)`` images of each
  class on their own place (round -> land, angular -> water), the rest on the
  other one.  Default ``bias=0.95`` (Waterbirds): groups 2,185 / 115 / 35 / 665;
* ``val`` (602) and ``test`` (2,312): balanced over place within each class,
  the classes imbalanced as in Waterbirds (467/466/133/133 and
  2,255/2,255/642/642): ``VAL_GROUP_COUNTS`` = 234 / 234 / 67 / 67 and
  ``TEST_GROUP_COUNTS`` = 900 / 900 / 256 / 256 (landbird on land / on water /
  waterbird on land / on water);
* ``train_debiased``: the train glyphs (same order, identical mask pixels) on
  fresh backgrounds of a uniformly random place (probability 1/2 each,
  independent of the class), for teachers trained without the shortcut.

``bias`` (the ``--bias`` option) changes the train split only; val and test are
always balanced over place.  Each split is in a seeded random order (so
``--limit`` keeps every group).  Every random draw comes from a numpy
``Generator`` seeded by ``(seed, stream)``: same seed -> bit-identical tensors.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import torch
import torch.nn.functional as F

from .colored_digits import check_options, rng_for
from .digits_on_scenes import to_rgb_float
from .imageset import ImageSet

NUM_CLASSES = 2
CLASSES = ("round", "angular")            # the "landbird" and "waterbird" of Waterbirds
ROUND_CHARS = "OCGQSoces03689"
ANGULAR_CHARS = "AKMNVWXZkvwxz47"
CLASS_CHARS = (ROUND_CHARS, ANGULAR_CHARS)
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
              "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
              "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf")

PLACES = ("land", "water")
PLACE_SCENES = (("grass", "gravel", "brick", "coffee", "chelsea"),
                ("hubble_deep_field", "rocket", "moon", "coins", "clock"))
TINTS = ((0.95, 0.85, 0.55), (0.45, 0.65, 1.0))    # RGB gains for the grayscale photos of each place
GROUP_NAMES = ("round/land", "round/water", "angular/land", "angular/water")

TRAIN_CLASS_COUNTS = (2300, 700)
VAL_GROUP_COUNTS = (234, 234, 67, 67)               # group g = 2 * y + place
TEST_GROUP_COUNTS = (900, 900, 256, 256)
DEFAULT_BIAS = 0.95
MIN_SIZE = 16

TEMPLATE_SIZE = 128          # glyph templates: TEMPLATE_SIZE^2 coverage maps, glyph centred
FONT_PIXELS = 80
GLYPH_EXTENT = (0.45, 0.75)  # the glyph's larger side, as a share of the image side
MAX_ROTATION = 30.0          # degrees
SCENE_SCALES = (2, 3, 4)     # a photo's short side, in image sides
BRIGHTNESS = CONTRAST = (0.75, 1.25)
SATURATION = (0.7, 1.3)

# Random streams (the second entry of the numpy seed), one per split and purpose.
_TRAIN, _VAL, _TEST, _DEBIAS = 21, 22, 23, 24
_GLYPH, _BACKGROUND, _PLACE = 0, 1, 2   # stream = 100 * purpose + split


# --------------------------------------------------------------------------- glyphs
def font_dir() -> str:
    """matplotlib's bundled TrueType folder (``mpl-data/fonts/ttf``)."""
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


@functools.lru_cache(maxsize=4)
def glyph_templates(class_chars: tuple[str, ...] = CLASS_CHARS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (class character, font) rendered once (``class_chars[k]``: the characters
    of class k; default this benchmark's): ``templates`` (G, 1, T, T)
    float32 coverage in [0, 1] with the glyph's bounding box centred,
    ``extent`` (G,) the larger side of that box in template pixels, and
    ``label`` (G,) the class of each template; the templates of class 0 come
    first, ordered by character then font."""
    from PIL import Image, ImageDraw, ImageFont

    fonts = [ImageFont.truetype(os.path.join(font_dir(), f), FONT_PIXELS) for f in FONT_FILES]
    T = TEMPLATE_SIZE
    out, extent, label = [], [], []
    for k, chars in enumerate(class_chars):
        for ch in chars:
            for font in fonts:
                canvas = Image.new("L", (2 * T, 2 * T), 0)
                ImageDraw.Draw(canvas).text((T, T), ch, fill=255, font=font, anchor="mm")
                box = canvas.getbbox()
                if box is None:
                    raise RuntimeError(f"glyph_templates: {ch!r} renders empty in {font.path}")
                glyph = canvas.crop(box)
                w, h = glyph.size
                if max(w, h) > T - 4:
                    raise RuntimeError(f"glyph_templates: {ch!r} in {font.path} is {w}x{h} px, over the template")
                tile = Image.new("L", (T, T), 0)
                tile.paste(glyph, ((T - w) // 2, (T - h) // 2))
                out.append(np.asarray(tile, dtype=np.float32) / 255.0)
                extent.append(float(max(w, h)))
                label.append(k)
    return (torch.from_numpy(np.stack(out))[:, None].contiguous(), torch.tensor(extent),
            torch.tensor(label, dtype=torch.int64))


def _template_choice(y: np.ndarray, rng: np.random.Generator, class_chars=CLASS_CHARS) -> np.ndarray:
    """Per image a uniformly random (character, font) template of its class."""
    n_fonts = len(FONT_FILES)
    per_class = [len(c) * n_fonts for c in class_chars]
    offset = np.concatenate([[0], np.cumsum(per_class)[:-1]])
    u = rng.random(len(y))
    counts = np.asarray(per_class)[y]
    return (offset[y] + np.minimum((u * counts).astype(np.int64), counts - 1)).astype(np.int64)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([np.stack(c, 1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])
    return table[i, np.arange(len(h))]


def glyph_layers(y: np.ndarray, size: int, rng: np.random.Generator, chunk: int = 512,
                 class_chars: tuple[str, ...] = CLASS_CHARS) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The glyphs of images with labels ``y`` (class k drawn from the characters
    ``class_chars[k]``): masks (N, 1, size, size) bool, colours (N, 3) float32 and
    the template index of each (see the module docstring for the draws)."""
    templates, extent, _ = glyph_templates(tuple(class_chars))
    n = len(y)
    which = _template_choice(y, rng, class_chars)
    frac = rng.uniform(*GLYPH_EXTENT, size=n)
    theta = np.deg2rad(rng.uniform(-MAX_ROTATION, MAX_ROTATION, size=n))
    pos = rng.random((n, 2))
    colour = _hsv_to_rgb(rng.random(n), rng.uniform(0.5, 1.0, n), rng.uniform(0.6, 1.0, n)).astype(np.float32)

    # the rotated glyph's half extents (in image pixels) bound where its centre may go
    T = TEMPLATE_SIZE
    e_out = frac * size                                    # glyph's larger side in image pixels
    scale = e_out / extent.numpy()[which]                  # image pixels per template pixel
    c, s = np.abs(np.cos(theta)), np.abs(np.sin(theta))
    reach = 0.5 * e_out * (c + s)                          # half extent of the rotated glyph box (a square bound)
    lo = np.minimum(reach + 1.0, size / 2.0)
    centre = lo[:, None] + pos * (size - 2 * lo)[:, None]  # (x, y) in image pixels

    # affine map from output normalised coords u to template normalised coords v
    # v = k * R(-theta) (u - p), with k = (T-pixels per image-pixel) * (size / T)
    k = (1.0 / scale) * (size / T)
    p = centre / size * 2.0 - 1.0
    cos, sin = np.cos(theta), np.sin(theta)
    A = np.stack([np.stack([cos, sin], 1), np.stack([-sin, cos], 1)], 1) * k[:, None, None]   # (n, 2, 2)
    t = -np.einsum("nij,nj->ni", A, p)
    A = torch.from_numpy(A.astype(np.float32))
    t = torch.from_numpy(t.astype(np.float32))
    ss = max(2, -(-64 // size))                             # supersampling: >= 2x, a grid of >= 64 px
    m = ss * size
    u = (2.0 * torch.arange(m, dtype=torch.float32) + 1.0) / m - 1.0   # pixel centres (align_corners=False)
    out = torch.empty(n, 1, size, size, dtype=torch.bool)
    idx = torch.from_numpy(which)
    for i in range(0, n, chunk):
        a, b = A[i:i + chunk], t[i:i + chunk]
        # F.affine_grid, cheaper: grid[n, r, c] = A[n] @ (u[c], u[r]) + t[n], one broadcast add
        along_x = a[:, None, None, :, 0] * u.view(1, 1, m, 1) + b[:, None, None, :]   # (c, 1, m, 2)
        along_y = a[:, None, None, :, 1] * u.view(1, m, 1, 1)                         # (c, m, 1, 2)
        grid = along_x + along_y
        fine = F.grid_sample(templates[idx[i:i + chunk]], grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False)
        out[i:i + chunk] = F.avg_pool2d(fine, ss) > 0.5
    return out, torch.from_numpy(colour), which


# --------------------------------------------------------------------------- places
@functools.lru_cache(maxsize=4)
def place_photos(size: int) -> tuple[tuple[torch.Tensor, ...], ...]:
    """Per place, per photo, per scale of ``SCENE_SCALES``: the toned photo as
    (3, h, w) float32 in [0, 1] with short side ``scale * size``."""
    import skimage.data

    out = []
    for place, names in enumerate(PLACE_SCENES):
        photos = []
        for name in names:
            img = np.asarray(getattr(skimage.data, name)())
            rgb = to_rgb_float(img)
            if img.ndim == 2:
                rgb = rgb * torch.tensor(TINTS[place]).view(3, 1, 1)
            h, w = rgb.shape[1:]
            for scale in SCENE_SCALES:
                short = scale * size
                f = short / min(h, w)
                hw = (max(short, round(h * f)), max(short, round(w * f)))
                photos.append(F.interpolate(rgb[None], size=hw, mode="bilinear", align_corners=False,
                                            antialias=True)[0].clamp_(0.0, 1.0).contiguous())
        out.append(tuple(photos))
    return tuple(out)


def backgrounds(place: np.ndarray, size: int, rng: np.random.Generator) -> torch.Tensor:
    """One jittered crop per image of a random photo of its place (N, 3, size, size)."""
    photos = [[p.numpy() for p in family] for family in place_photos(size)]
    n = len(place)
    pick = rng.random(n)
    corner = rng.random((n, 2))
    flip = rng.random(n) < 0.5
    jitter = np.stack([rng.uniform(*BRIGHTNESS, n), rng.uniform(*CONTRAST, n), rng.uniform(*SATURATION, n)], 1)
    crops = np.empty((n, 3, size, size), dtype=np.float32)
    for i in range(n):
        family = photos[int(place[i])]
        img = family[min(int(pick[i] * len(family)), len(family) - 1)]
        top = int(corner[i, 0] * (img.shape[1] - size + 1))
        left = int(corner[i, 1] * (img.shape[2] - size + 1))
        crop = img[:, top:top + size, left:left + size]
        crops[i] = crop[:, :, ::-1] if flip[i] else crop
    out = torch.from_numpy(crops)
    j = torch.from_numpy(jitter.astype(np.float32))
    b, c, s = (j[:, k].view(n, 1, 1, 1) for k in range(3))
    out.mul_(b)                                              # in place: the splits are large
    mean = out.mean((1, 2, 3), keepdim=True)
    out.sub_(mean).mul_(c).add_(mean)
    grey = out.mean(1, keepdim=True)
    out.sub_(grey).mul_(s).add_(grey)
    return out.clamp_(0.0, 1.0)


# --------------------------------------------------------------------------- splits
def compose(mask: torch.Tensor, colour: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """The glyph colour on the mask, the background elsewhere (N, 3, H, W)."""
    return torch.where(mask, colour[:, :, None, None], background).contiguous()


def train_places(y: np.ndarray, bias: float, rng: np.random.Generator) -> np.ndarray:
    """The place of each train image: ``round(bias * n_k)`` of the ``n_k`` images of
    class k, chosen uniformly at random, on its own place (place k), the rest on the other."""
    place = np.empty(len(y), dtype=np.int64)
    for k in range(NUM_CLASSES):
        sel = np.flatnonzero(y == k)
        own = round(bias * len(sel))
        place[sel] = np.where(rng.permutation(len(sel)) < own, k, 1 - k)
    return place


def _grouped(counts, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels and places with ``counts[g]`` images of group g = 2y + place, shuffled."""
    g = np.repeat(np.arange(len(counts)), counts)
    g = g[rng.permutation(len(g))]
    return (g // 2).astype(np.int64), (g % 2).astype(np.int64)


def build_glyphs_on_places(seed: int = 0, *, size: int = 64, bias: float = DEFAULT_BIAS) -> dict[str, ImageSet]:
    """Build the ``glyphs-on-places`` splits ``train``, ``val``, ``train_debiased``
    and ``test`` (see the module docstring); ``bias`` = the share of each class's
    train images on its own place."""
    check_options(seed, size, bias)
    if size < MIN_SIZE:
        raise ValueError(f"size must be an int >= {MIN_SIZE} for glyphs-on-places, got {size!r}")

    def stream(purpose: int, split: int) -> np.random.Generator:
        return rng_for(seed, 100 * purpose + split)

    def make(y, place, mask, colour, bg_stream) -> ImageSet:
        bg = backgrounds(place, size, bg_stream)
        x = compose(mask, colour, bg)
        return ImageSet(x=x, y=torch.from_numpy(y), mask=mask,
                        bias=torch.from_numpy((2 * y + place).astype(np.int64)))

    out = {}
    # train: exact class counts in a random order; round(bias * n_k) random images of class k on its own place
    rng = stream(_GLYPH, _TRAIN)
    y = np.repeat(np.arange(NUM_CLASSES), TRAIN_CLASS_COUNTS)[rng.permutation(sum(TRAIN_CLASS_COUNTS))]
    y = y.astype(np.int64)
    place = train_places(y, bias, stream(_PLACE, _TRAIN))
    mask, colour, _ = glyph_layers(y, size, rng)
    out["train"] = make(y, place, mask, colour, stream(_BACKGROUND, _TRAIN))
    debiased_place = stream(_GLYPH, _DEBIAS).integers(0, 2, size=len(y)).astype(np.int64)
    out["train_debiased"] = make(y, debiased_place, mask.clone(), colour, stream(_BACKGROUND, _DEBIAS))
    for name, counts, split in (("val", VAL_GROUP_COUNTS, _VAL), ("test", TEST_GROUP_COUNTS, _TEST)):
        rng = stream(_GLYPH, split)
        y, place = _grouped(counts, rng)
        mask, colour, _ = glyph_layers(y, size, rng)
        out[name] = make(y, place, mask, colour, stream(_BACKGROUND, split))
    return {k: out[k] for k in ("train", "val", "train_debiased", "test")}
