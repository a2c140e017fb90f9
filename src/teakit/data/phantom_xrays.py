"""``phantom-xrays``: a chest-X-ray-shaped benchmark (three classes that differ
only inside the lungs, eight hospitals whose burned-in marks are the shortcut,
two of them external) built in memory from numpy noise, ellipses and
matplotlib's bundled fonts.

Anatomy (every image; drawn in an "anatomy frame" that is rotated by +-4
degrees and shifted by up to 2.5 % of the side per image): dark air; a body
ellipse and neck (soft tissue, intensity 0.40..0.50); a spine (a thin
vertical ellipse with vertebra bands); a heart ellipse (0.60..0.72), low and
to the image's right; two lung fields, ellipses tilted 4..10 degrees with
their apices toward the midline, minus the heart (the **mask** is exactly
their pixels); lung air 0.12..0.22 with smooth texture and a bright hilum;
six rib arches per side and two clavicles (ring segments of ellipses, added
over everything in the body).  Sizes, positions, rotation and intensities vary
per image (uniform draws, ranges below); pixels are tested against the
implicit ellipse equation at their centres (what ``skimage.draw.ellipse``
does), vectorised over images.

Classes (``CLASSES``), which change only lung pixels (every lesion is
multiplied by the lung mask):

* 0 ``normal``: the lungs as above;
* 1 ``pneumonia``: 1, 2 or 3 (probabilities 0.5 / 0.3 / 0.2) focal
  consolidations in ONE lung (left or right, 1/2 each): flat-topped Gaussian
  blobs, sigma 0.035..0.07 of the side, amplitude 0.15..0.40, centred at a
  uniformly random point of the inner 75 % of that lung;
* 2 ``covid``: diffuse bilateral ground-glass haze, peripheral (zero in the
  inner quarter of each lung's radius, full from 3/4 of it outward) and basal
  (stronger low in the lung), patchy (a smooth random field), amplitude
  0.12..0.30 per image, x 0.8..1.2 per lung.

Any class may also have a tiny calcified granuloma (probability 0.2: a dot of
sigma 0.012), and every lung has the texture above, so faint lesions are hard.

Hospitals (``HOSPITALS``; the **source**; ``ImageSet.bias`` = its index, the
names sort in index order, as ``read_xray`` numbers sources): each burns in
its own code (three letters in its own font, at its own corner), an ``L`` or
``R`` side marker (plain, boxed or inverted, at another corner), sometimes a
dot or bar mark, and has its own collimation / border frame, contrast curve
(``x ** gamma``; gamma jittered x exp(+-0.08) per image) and Gaussian noise
level (x 0.75..1.25 per image); marks are rendered with Pillow at 4 x the
side and box-averaged (coverage x 1.6, clipped).  Every burned-in mark lies in the top or
bottom 15 % of the image and every frame in the outer 6 %, where the lungs
never reach, so marks and masks never overlap; marks shift by up to 1 px
(at 64 px; scaled with ``size``) per image.  The two hospitals of each class
have gamma and noise on either side of the same mean (1.0 and 0.02), so the
lung pixels say little about the class through the hospital: the shortcut is
the marks.  Hospitals 0-5 (``TRAIN_HOSPITALS``) are the training ones; class
k's own hospitals are 2k and 2k + 1.  Hospitals 6-7 (``EXTERNAL_HOSPITALS``)
are never used in training or selection.

Splits (``SPLITS``; counts per class in ``CLASS_COUNTS``), each in a seeded
random order:

* ``train`` (1,800) and ``val`` (300): per class, ``round(bias * n)`` images
  from the class's own two hospitals (split evenly), the rest spread evenly
  over the other four training hospitals; default ``bias`` 0.9 (train:
  270 / 270 own, 15 from each other hospital);
* ``train_debiased``: the train chests (same order, same masks and lung
  pixels before the hospital's rendering) from a uniformly random training
  hospital (independent of the class), for ``tea train-teacher --kind debiased``;
* ``id`` (450): as train, always at 0.9;
* ``swapped`` (450): class k mostly (0.9) from the hospitals of class
  (k + 1) % 3, the rest spread over the other four training hospitals;
* ``external`` (450): hospitals 6 and 7 only, 75 images per hospital and
  class.

``bias`` (``--bias``) changes train and val only.  Every random draw comes from
a numpy ``Generator`` seeded by ``(seed, stream)``: same seed -> bit-identical
tensors.  With ``with_info=True`` the builder also returns ``info``
(``classes``, ``sources`` per split, ``source_names``, ``external_sources``),
as :func:`teakit.data.readers.read_xray` does, so ``tea evaluate`` reports
accuracy and ROC-AUC per hospital.  :func:`export_xray_folder` writes the
splits in the ``--dataset xray`` layout.
"""
from __future__ import annotations

import csv
import functools
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .colored_digits import check_options, rng_for
from .imageset import ImageSet

NUM_CLASSES = 3
CLASSES = ("normal", "pneumonia", "covid")
SPLITS = ("train", "val", "train_debiased", "id", "swapped", "external")
PHANTOM_XRAYS_SPLITS = SPLITS
CLASS_COUNTS = {"train": 600, "val": 100, "id": 150, "swapped": 150}   # images per class
EXTERNAL_PER_GROUP = 75                 # external: images per (hospital, class)
DEFAULT_BIAS = 0.9                      # share of a class's train / val / id images from its own hospitals
SWAPPED_SHARE = 0.9                     # share of a class's swapped images from the next class's hospitals
MIN_SIZE = 64


@dataclass(frozen=True)
class Hospital:
    """One source: its burned-in marks, frame, contrast curve and noise."""
    name: str
    code: str            # burned-in text
    font: str            # a TrueType file of matplotlib's mpl-data/fonts/ttf
    code_at: str         # corner of the code: t|b (top / bottom) + l|c|r
    side: str            # side marker letter, "L" or "R"
    side_at: str         # its corner
    side_style: str      # plain | box | inverse
    extra: str           # "" | dots | bar: one more mark, at the remaining bottom / top corner
    frame: str           # "" | lr | tb | lrtb (black collimation on those sides) | line (a thin bright border)
    frame_width: float   # as a share of the side
    gamma: float
    noise: float


HOSPITALS = (
    Hospital("Ashford", "ASH", "DejaVuSans-Bold.ttf", "tl", "R", "tr", "plain", "", "", 0.0, 0.88, 0.012),
    Hospital("Brennan", "BRN", "DejaVuSerif.ttf", "br", "L", "bl", "box", "", "lr", 0.06, 1.12, 0.028),
    Hospital("Calder", "CAL", "DejaVuSansMono-Bold.ttf", "tr", "L", "tl", "inverse", "dots", "tb", 0.04,
             1.10, 0.016),
    Hospital("Dunmore", "DUN", "STIXGeneralBol.ttf", "bl", "R", "br", "plain", "bar", "line", 0.02, 0.90, 0.024),
    Hospital("Elston", "ELS", "DejaVuSans-Oblique.ttf", "tc", "L", "bl", "plain", "dots", "", 0.0, 0.95, 0.030),
    Hospital("Fairholm", "FHM", "DejaVuSerif-BoldItalic.ttf", "bc", "R", "tl", "box", "bar", "lrtb", 0.04,
             1.05, 0.010),
    # external: never in train / val
    Hospital("Glenrock", "GLR", "DejaVuSansMono.ttf", "br", "L", "tr", "inverse", "bar", "lr", 0.05, 1.00, 0.020),
    Hospital("Harwick", "HWK", "STIXGeneral.ttf", "tr", "R", "bl", "box", "dots", "line", 0.015, 0.97, 0.018),
)
HOSPITAL_NAMES = tuple(h.name for h in HOSPITALS)
TRAIN_HOSPITALS = (0, 1, 2, 3, 4, 5)
EXTERNAL_HOSPITALS = (6, 7)
OWN_HOSPITALS = ((0, 1), (2, 3), (4, 5))   # class k's own hospitals

MARK_VALUE = 0.95           # brightness of burned-in marks
COLLIMATION_VALUE = 0.03    # the black frame
LINE_VALUE = 0.85           # the thin bright border
SUPERSAMPLE = 4             # marks are rendered at 4 x the image side and box-averaged,
MARK_GAIN = 1.6             # then their coverage x 1.6 (clipped to 1): burned-in text is crisp
TEXT_HEIGHT = 0.085         # code / side marker height, as a share of the side
MARK_MARGIN = 0.02          # distance of a mark from the image edge, as a share of the side

# Random streams: 1000 + 100 * purpose + split
_SPLIT_ID = {"train": 1, "val": 2, "id": 3, "swapped": 4, "external": 5, "train_debiased": 6}
_ASSIGN, _ANATOMY, _RENDER = 0, 1, 2


# --------------------------------------------------------------------------- anatomy
def _font_path(name: str) -> str:
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name)


def _u(rng, lo, hi, n):
    return rng.uniform(lo, hi, n).astype(np.float32)


def chest_params(y: np.ndarray, rng: np.random.Generator) -> dict:
    """Every per-image draw of the anatomy and lesions of images with labels ``y``
    (numpy arrays, one entry per image; smooth random fields as small grids)."""
    n = len(y)
    p = {
        "phi": np.deg2rad(_u(rng, -4.0, 4.0, n)), "tx": _u(rng, -0.025, 0.025, n), "ty": _u(rng, -0.025, 0.025, n),
        "body_cy": _u(rng, 0.56, 0.60, n), "body_rx": _u(rng, 0.40, 0.46, n), "body_ry": _u(rng, 0.50, 0.56, n),
        "tissue": _u(rng, 0.40, 0.50, n), "spine_rx": _u(rng, 0.03, 0.04, n), "spine": _u(rng, 0.66, 0.76, n),
        "lung_d": _u(rng, 0.165, 0.20, n), "lung_cy": _u(rng, 0.47, 0.52, n),
        "lung_rx": _u(rng, 0.115, 0.14, n), "lung_ry": _u(rng, 0.21, 0.245, n), "tilt": np.deg2rad(_u(rng, 4, 10, n)),
        "asym": rng.uniform(0.95, 1.05, (n, 2, 2)).astype(np.float32),
        "air": _u(rng, 0.12, 0.22, n), "hilum": _u(rng, 0.04, 0.09, n),
        "heart_dx": _u(rng, 0.03, 0.06, n), "heart_dy": _u(rng, 0.12, 0.17, n),
        "heart_rx": _u(rng, 0.12, 0.15, n), "heart_ry": _u(rng, 0.10, 0.13, n), "heart": _u(rng, 0.60, 0.72, n),
        "rib_gap": _u(rng, 0.078, 0.09, n), "rib": _u(rng, 0.04, 0.08, n), "clavicle_cy": _u(rng, 0.16, 0.20, n),
        "exposure": _u(rng, 0.92, 1.08, n),
        "texture8": rng.standard_normal((n, 1, 8, 8)).astype(np.float32),
        "texture16": rng.standard_normal((n, 1, 16, 16)).astype(np.float32),
        # pneumonia: up to 3 blobs in one lung
        "pn_side": rng.integers(0, 2, n), "pn_k": rng.choice(3, n, p=(0.5, 0.3, 0.2)) + 1,
        "pn_r": (0.75 * np.sqrt(rng.random((n, 3)))).astype(np.float32),
        "pn_angle": (2 * np.pi * rng.random((n, 3))).astype(np.float32),
        "pn_sigma": rng.uniform(0.035, 0.07, (n, 3)).astype(np.float32),
        "pn_amp": rng.uniform(0.15, 0.40, (n, 3)).astype(np.float32),
        # covid: bilateral peripheral patchy haze
        "cv_amp": _u(rng, 0.12, 0.30, n), "cv_lung": rng.uniform(0.8, 1.2, (n, 2)).astype(np.float32),
        "cv_field": rng.standard_normal((n, 1, 5, 5)).astype(np.float32),
        # any class: a small calcified granuloma
        "gr_on": rng.random(n) < 0.2, "gr_side": rng.integers(0, 2, n),
        "gr_r": (0.7 * np.sqrt(rng.random(n))).astype(np.float32),
        "gr_angle": (2 * np.pi * rng.random(n)).astype(np.float32),
    }
    p["y"] = np.asarray(y, dtype=np.int64)
    return p


def _ellipse(a, b, cx, cy, rx, ry, theta=None):
    """Local coordinates (p, q) of points (a, b) in an ellipse's frame: inside iff p^2 + q^2 <= 1."""
    dx, dy = a - cx, b - cy
    if theta is None:
        return dx / rx, dy / ry
    c, s = np.cos(theta), np.sin(theta)
    return (dx * c + dy * s) / rx, (-dx * s + dy * c) / ry


@functools.lru_cache(maxsize=8)
def _cubic_matrix(grid: int, size: int) -> np.ndarray:
    """(size, grid) weights of a bicubic upsampling (``align_corners=False``) along one axis."""
    eye = torch.eye(grid).view(grid, 1, 1, grid)
    m = F.interpolate(eye, size=(1, size), mode="bicubic", align_corners=False)[:, 0, 0, :]
    return np.ascontiguousarray(m.T.numpy().astype(np.float32))


def _smooth(field: np.ndarray, size: int) -> np.ndarray:
    """A small random grid (n, 1, g, g) upsampled (bicubic) to (n, size, size)."""
    m = _cubic_matrix(field.shape[-1], size)
    return (m @ field[:, 0] @ m.T).astype(np.float32)


def _point_in_lung(lung: dict, side: np.ndarray, r, angle, cy) -> tuple[np.ndarray, np.ndarray]:
    """The anatomy-frame point at polar (r, angle) of lung ``side`` (0 / 1 per image) in its
    own frame (r = 1: the rim); ``lung`` holds per side the (n, 1, 1) cx, rx, ry, theta."""
    s = side.reshape(-1, 1, 1) == 0
    cx, rx, ry, th = (np.where(s, lung[0][k], lung[1][k]) for k in ("cx", "rx", "ry", "theta"))
    lp, lq = r * np.cos(angle) * rx, r * np.sin(angle) * ry
    return cx + lp * np.cos(th) - lq * np.sin(th), cy + lp * np.sin(th) + lq * np.cos(th)


def _chunk_chests(p: dict, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(p["y"])
    col = {k: v.reshape(n, 1, 1) for k, v in p.items() if v.ndim == 1 and v.dtype == np.float32}
    centres = ((np.arange(size, dtype=np.float32) + 0.5) / size).astype(np.float32)
    u, v = centres.reshape(1, 1, size), centres.reshape(1, size, 1)
    # the anatomy frame: pixel centres rotated by -phi about the image centre, shifted
    c, s = np.cos(col["phi"]), np.sin(col["phi"])
    du, dv = u - 0.5 - col["tx"], v - 0.5 - col["ty"]
    a, b = 0.5 + du * c + dv * s, 0.5 - du * s + dv * c                  # (n, size, size) each

    pb, qb = _ellipse(a, b, 0.5, col["body_cy"], col["body_rx"], col["body_ry"])
    pn, qn = _ellipse(a, b, 0.5, 0.05, 0.11, 0.16)
    body = (pb * pb + qb * qb <= 1) | (pn * pn + qn * qn <= 1)
    img = np.where(body, col["tissue"], np.float32(0.03))
    ps, qs = _ellipse(a, b, 0.5, 0.55, col["spine_rx"], 0.62)
    bands = 0.88 + 0.12 * np.cos((2 * np.pi / 0.055) * b)
    img = np.where(ps * ps + qs * qs <= 1, col["spine"] * bands, img)
    ph, qh = _ellipse(a, b, 0.5 + col["heart_dx"], col["lung_cy"] + col["heart_dy"], col["heart_rx"],
                      col["heart_ry"])
    heart = ph * ph + qh * qh <= 1
    img = np.where(heart, col["heart"], img)

    lung_geo, lungs, local = [], [], []
    for side, sign in ((0, -1.0), (1, 1.0)):                            # image left, image right
        geo = {"cx": 0.5 + sign * col["lung_d"], "theta": -sign * col["tilt"],   # apex toward the midline
               "rx": col["lung_rx"] * p["asym"][:, side, 0].reshape(n, 1, 1),
               "ry": col["lung_ry"] * p["asym"][:, side, 1].reshape(n, 1, 1)}
        pl, ql = _ellipse(a, b, geo["cx"], col["lung_cy"], geo["rx"], geo["ry"], geo["theta"])
        lung_geo.append(geo)
        lungs.append((pl * pl + ql * ql <= 1) & ~heart)
        local.append((pl, ql))
    lung = lungs[0] | lungs[1]
    air = col["air"] + 0.02 * _smooth(p["texture8"], size) + 0.01 * _smooth(p["texture16"], size)
    for side, sign in ((0, -1.0), (1, 1.0)):
        hx = lung_geo[side]["cx"] - sign * 0.6 * lung_geo[side]["rx"]
        hil = np.exp(((a - hx) ** 2 + (b - col["lung_cy"]) ** 2) * (-1 / (2 * 0.06 ** 2)))
        air = air + np.where(lungs[side], col["hilum"] * hil, np.float32(0))
    img = np.where(lung, air, img)

    # ribs (arches of ellipses centred on the spine) and clavicles, over everything in the body
    across = ((a - 0.5) / 0.36) ** 2
    ribs = np.zeros(img.shape, dtype=bool)
    for i in range(6):
        cy = col["lung_cy"] - 0.24 + i * col["rib_gap"]
        r2 = across + ((b - cy) / 0.10) ** 2
        ribs |= (r2 > 0.93 ** 2) & (r2 < 1.07 ** 2) & (b < cy)
    ribs &= np.abs(a - 0.5) > 0.05
    for sign in (-1.0, 1.0):
        pc, qc = _ellipse(a, b, 0.5 + sign * 0.17, col["clavicle_cy"], 0.17, 0.02, np.float32(sign * np.deg2rad(12.0)))
        ribs |= pc * pc + qc * qc <= 1
    img = img + np.where(ribs & body, col["rib"], np.float32(0))

    # lesions, multiplied by the lung mask; computed on the images that have them
    y = p["y"]
    lesion = np.zeros(img.shape, dtype=np.float32)

    def add(rows, layer, side):
        """lesion[rows] += layer, on the pixels of lung ``side`` (0 / 1 per row) of those images."""
        on = np.where((side == 0).reshape(-1, 1, 1), lungs[0][rows], lungs[1][rows])
        lesion[rows] += np.where(on, layer, np.float32(0))

    for j in range(3):                                                   # pneumonia: blobs in one lung
        rows = np.flatnonzero((y == 1) & (p["pn_k"] > j))
        if len(rows):
            side = p["pn_side"][rows]
            geo = [{k: g[k][rows] if np.ndim(g[k]) else g[k] for k in g} for g in lung_geo]
            bx, by = _point_in_lung(geo, side, p["pn_r"][rows, j, None, None], p["pn_angle"][rows, j, None, None],
                                    col["lung_cy"][rows])
            sig = p["pn_sigma"][rows, j, None, None]
            d2 = (a[rows] - bx) ** 2 + (b[rows] - by) ** 2
            blob = np.minimum(1.3 * np.exp(-d2 / (2 * sig * sig)), np.float32(1.0))
            add(rows, p["pn_amp"][rows, j, None, None] * blob, side)
    rows = np.flatnonzero(y == 2)                                        # covid: bilateral peripheral haze
    if len(rows):
        patches = np.clip(0.6 + 0.5 * _smooth(p["cv_field"][rows], size), 0.2, 1.0)
        for side in (0, 1):
            pl, ql = local[side][0][rows], local[side][1][rows]
            periph = np.clip((np.sqrt(pl * pl + ql * ql) - 0.25) / 0.5, 0.0, 1.0)
            basal = np.clip(0.55 + 0.45 * ql, 0.1, 1.0)
            amp = col["cv_amp"][rows] * p["cv_lung"][rows, side, None, None]
            add(rows, amp * periph * basal * patches, np.full(len(rows), side))
    rows = np.flatnonzero(p["gr_on"])                                    # any class: a granuloma
    if len(rows):
        side = p["gr_side"][rows]
        geo = [{k: g[k][rows] if np.ndim(g[k]) else g[k] for k in g} for g in lung_geo]
        gx, gy = _point_in_lung(geo, side, p["gr_r"][rows, None, None], p["gr_angle"][rows, None, None],
                                col["lung_cy"][rows])
        d2 = (a[rows] - gx) ** 2 + (b[rows] - gy) ** 2
        add(rows, 0.25 * np.exp(d2 * (-1 / (2 * 0.012 ** 2))), side)
    img = np.clip((img + lesion) * col["exposure"], 0.0, 1.0).astype(np.float32)
    return img, lung, lesion


def draw_chests(y: np.ndarray, size: int, rng: np.random.Generator, chunk: int = 256
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The chests of images with labels ``y`` before any hospital's rendering:
    ``clean`` (N, size, size) float32 in [0, 1], the lung ``mask`` (N, size, size)
    bool and the ``lesion`` layer (N, size, size) float32, zero off the mask."""
    p = chest_params(y, rng)
    n = len(y)
    clean = np.empty((n, size, size), dtype=np.float32)
    mask = np.empty((n, size, size), dtype=bool)
    lesion = np.empty((n, size, size), dtype=np.float32)
    for i in range(0, n, chunk):
        part = {k: v[i:i + chunk] for k, v in p.items()}
        clean[i:i + chunk], mask[i:i + chunk], lesion[i:i + chunk] = _chunk_chests(part, size)
    return torch.from_numpy(clean), torch.from_numpy(mask), torch.from_numpy(lesion)


# --------------------------------------------------------------------------- hospitals
def _corner(at: str, w: int, h: int, side: int, margin: int) -> tuple[int, int]:
    """Top-left position of a w x h box at corner ``at`` (t|b + l|c|r) of a side x side canvas."""
    x = {"l": margin, "c": (side - w) // 2, "r": side - margin - w}[at[1]]
    y = {"t": margin, "b": side - margin - h}[at[0]]
    return x, y


def _fit_font(path: str, text: str, height: int):
    """The font of ``path`` at the largest size whose ``text`` is at most ``height`` px tall."""
    from PIL import ImageFont

    px = int(height * 1.6)
    while px > 4:
        font = ImageFont.truetype(path, px)
        l, t, r, b = font.getbbox(text)
        if b - t <= height:
            return font, (l, t, r, b)
        px -= 1
    raise RuntimeError(f"cannot fit {text!r} in {height} px with {path}")


def _draw_text(draw, at: str, text: str, font_file: str, big: int, margin: int, style: str = "plain") -> None:
    font, (l, t, r, b) = _fit_font(_font_path(font_file), text, round(TEXT_HEIGHT * big))
    w, h = r - l, b - t
    pad = max(2, round(0.012 * big)) if style != "plain" else 0
    x, y = _corner(at, w + 2 * pad, h + 2 * pad, big, margin)
    if style == "box":
        draw.rectangle((x, y, x + w + 2 * pad - 1, y + h + 2 * pad - 1), outline=255, width=SUPERSAMPLE)
    elif style == "inverse":
        draw.rectangle((x, y, x + w + 2 * pad - 1, y + h + 2 * pad - 1), fill=255)
    draw.text((x + pad - l, y + pad - t), text, font=font, fill=0 if style == "inverse" else 255)


@functools.lru_cache(maxsize=4)
def hospital_marks(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per hospital, rendered once: the coverage of its burned-in marks (H, size,
    size) float32 in [0, 1], its frame (H, size, size) bool and the frame's value (H,)."""
    from PIL import Image, ImageDraw

    big = SUPERSAMPLE * size
    margin = round(MARK_MARGIN * big)
    cover, frames, values = [], [], []
    idx = np.arange(size)
    for h in HOSPITALS:
        canvas = Image.new("L", (big, big), 0)
        draw = ImageDraw.Draw(canvas)
        _draw_text(draw, h.code_at, h.code, h.font, big, margin)
        _draw_text(draw, h.side_at, h.side, h.font, big, margin, h.side_style)
        if h.extra:
            used = {h.code_at, h.side_at}
            at = next(c for c in ("bc", "tc", "br", "bl", "tr", "tl") if c not in used)
            unit = round(0.03 * big)
            if h.extra == "dots":
                x, y = _corner(at, 5 * unit, unit, big, margin)
                for k in range(3):
                    draw.rectangle((x + 2 * k * unit, y, x + 2 * k * unit + unit - 1, y + unit - 1), fill=255)
            else:
                x, y = _corner(at, 7 * unit, unit, big, margin)
                draw.rectangle((x, y, x + 7 * unit - 1, y + unit - 1), fill=255)
        arr = np.asarray(canvas, dtype=np.float32) / 255.0
        cover.append(np.minimum(MARK_GAIN * arr.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean((1, 3)), 1.0))
        frame = np.zeros((size, size), dtype=bool)
        width = round(h.frame_width * size)
        if h.frame == "line":
            k = max(0, width)
            frame[k, k:size - k] = frame[size - 1 - k, k:size - k] = True
            frame[k:size - k, k] = frame[k:size - k, size - 1 - k] = True
        else:
            if "l" in h.frame:
                frame[:, idx < width] = True
            if "r" in h.frame:
                frame[:, idx >= size - width] = True
            if "t" in h.frame:
                frame[idx < width, :] = True
            if "b" in h.frame:
                frame[idx >= size - width, :] = True
        frames.append(frame)
        values.append(LINE_VALUE if h.frame == "line" else COLLIMATION_VALUE)
    return (torch.from_numpy(np.stack(cover)).contiguous(), torch.from_numpy(np.stack(frames)),
            torch.tensor(values, dtype=torch.float32))


def burn_in(clean: torch.Tensor, hospital: np.ndarray, size: int, rng: np.random.Generator
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each chest of ``clean`` (N, size, size) as its hospital renders it: contrast
    curve, frame, burned-in marks (shifted by up to ``max(1, size // 64)`` px) and
    noise; returns the images (N, size, size) in [0, 1], the coverage of the marks
    (N, size, size) float32 in [0, 1] (as shifted) and the frame (N, size, size) bool."""
    n = len(hospital)
    cover, frames, values = (t.numpy() for t in hospital_marks(size))
    j = max(1, size // 64)
    shift = rng.integers(-j, j + 1, (n, 2))
    gamma_jitter = np.exp(rng.uniform(-0.08, 0.08, n)).astype(np.float32)
    noise_jitter = rng.uniform(0.75, 1.25, n).astype(np.float32)
    noise = rng.standard_normal((n, size, size), dtype=np.float32)
    h = np.asarray(hospital, dtype=np.int64)
    gamma = np.array([x.gamma for x in HOSPITALS], dtype=np.float32)[h] * gamma_jitter
    sigma = np.array([x.noise for x in HOSPITALS], dtype=np.float32)[h] * noise_jitter
    padded = np.pad(cover, ((0, 0), (j, j), (j, j)))
    marks = np.empty((n, size, size), dtype=np.float32)
    for i in range(n):
        dy, dx = j + int(shift[i, 0]), j + int(shift[i, 1])
        marks[i] = padded[h[i], dy:dy + size, dx:dx + size]
    img = np.power(np.clip(clean.numpy(), 1e-4, 1.0), gamma.reshape(n, 1, 1))
    frame = frames[h]
    img = np.where(frame, values[h].reshape(n, 1, 1), img)
    img = img * (1 - marks) + MARK_VALUE * marks
    img = np.clip(img + sigma.reshape(n, 1, 1) * noise, 0.0, 1.0).astype(np.float32)
    return torch.from_numpy(img), torch.from_numpy(marks), torch.from_numpy(frame)


# --------------------------------------------------------------------------- splits
def spread(total: int, bins: int) -> list[int]:
    """``total`` split over ``bins`` as evenly as possible, the first bins taking the remainder."""
    return [total // bins + (1 if k < total % bins else 0) for k in range(bins)]


def split_counts(split: str, bias: float = DEFAULT_BIAS) -> np.ndarray:
    """Images per (class, hospital) of a split: a (NUM_CLASSES, len(HOSPITALS)) int array."""
    out = np.zeros((NUM_CLASSES, len(HOSPITALS)), dtype=np.int64)
    if split == "external":
        out[:, list(EXTERNAL_HOSPITALS)] = EXTERNAL_PER_GROUP
        return out
    n = CLASS_COUNTS[split]
    for k in range(NUM_CLASSES):
        if split == "swapped":
            main, share = OWN_HOSPITALS[(k + 1) % NUM_CLASSES], SWAPPED_SHARE
        else:
            main, share = OWN_HOSPITALS[k], (bias if split in ("train", "val") else DEFAULT_BIAS)
        own = round(share * n)
        rest = [hh for hh in TRAIN_HOSPITALS if hh not in main]
        for hh, c in zip(main, spread(own, len(main))):
            out[k, hh] = c
        for hh, c in zip(rest, spread(n - own, len(rest))):
            out[k, hh] = c
    return out


def _assign(counts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels and hospitals with ``counts[k, h]`` images each, in a random order."""
    k, h = np.nonzero(counts)
    reps = counts[k, h]
    y, hosp = np.repeat(k, reps), np.repeat(h, reps)
    order = rng.permutation(len(y))
    return y[order].astype(np.int64), hosp[order].astype(np.int64)


def build_phantom_xrays(seed: int = 0, *, size: int = 64, bias: float = DEFAULT_BIAS, with_info: bool = False):
    """Build the ``phantom-xrays`` splits (``SPLITS``; see the module docstring);
    ``bias`` = the share of each class's train / val images from its own two
    hospitals.  Returns ``{split: ImageSet}``, or ``(splits, info)`` with ``with_info``."""
    check_options(seed, size, bias)
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < MIN_SIZE:
        raise ValueError(f"size must be an int >= {MIN_SIZE} for phantom-xrays, got {size!r}")

    def stream(purpose: int, split: str) -> np.random.Generator:
        return rng_for(seed, 1000 + 100 * purpose + _SPLIT_ID[split])

    def make(clean, mask, y, hosp, split) -> ImageSet:
        img, _, _ = burn_in(clean, hosp, size, stream(_RENDER, split))
        return ImageSet(x=img[:, None].expand(-1, 3, -1, -1).contiguous(), y=torch.from_numpy(y),
                        mask=mask[:, None].contiguous(), bias=torch.from_numpy(hosp))

    splits, hospitals = {}, {}
    for split in ("train", "val", "id", "swapped", "external"):
        y, hosp = _assign(split_counts(split, bias), stream(_ASSIGN, split))
        clean, mask, _ = draw_chests(y, size, stream(_ANATOMY, split))
        splits[split], hospitals[split] = make(clean, mask, y, hosp, split), hosp
        if split == "train":   # the same chests from a random training hospital
            deb = np.asarray(TRAIN_HOSPITALS)[stream(_ASSIGN, "train_debiased").integers(0, len(TRAIN_HOSPITALS),
                                                                                         len(y))]
            splits["train_debiased"] = make(clean, mask.clone(), y, deb.astype(np.int64), "train_debiased")
            hospitals["train_debiased"] = deb
    splits = {k: splits[k] for k in SPLITS}
    if not with_info:
        return splits
    info = {"classes": list(CLASSES),
            "sources": {k: [HOSPITAL_NAMES[h] for h in hospitals[k].tolist()] for k in SPLITS},
            "source_names": list(HOSPITAL_NAMES),
            "external_sources": [HOSPITAL_NAMES[h] for h in EXTERNAL_HOSPITALS]}
    return splits, info


# --------------------------------------------------------------------------- export
def export_xray_folder(splits: dict, info: dict, out, *, test_split: str = "id") -> Path:
    """Write ``splits`` in the layout ``--dataset xray`` reads
    (:func:`teakit.data.readers.read_xray`): ``out/metadata.csv`` with
    ``filename,label,split,source,mask_filename``, images ``out/images/SPLIT/NNNNN.png``
    (8-bit grayscale when the three channels are equal, else RGB) and masks
    ``out/masks/SPLIT/NNNNN.png`` (0 / 255).  Labels are written as class indices
    (read back in the same order; ``--class-names`` names them); the sources are
    ``info["sources"]``.  The reader needs a ``test`` split: when ``splits`` has
    none, ``test_split`` (default ``id``) is written as ``test``.  Rows of an
    ``external`` split keep that split name, so they form ``external`` with or
    without ``--external-sources``.  Returns the path of ``metadata.csv``."""
    from PIL import Image

    out = Path(out)
    sources = info.get("sources") or {}
    rename = {test_split: "test"} if "test" not in splits and test_split in splits else {}
    rows = []
    for name, ds in splits.items():
        if ds.lazy or ds.norm is not None:
            raise ValueError(f"export_xray_folder: split {name!r} is lazy or normalised; export raw in-memory images")
        if name not in sources or len(sources[name]) != len(ds):
            raise ValueError(f"export_xray_folder: info['sources'][{name!r}] must name the source of each of "
                             f"its {len(ds)} images")
        (out / "images" / name).mkdir(parents=True, exist_ok=True)
        (out / "masks" / name).mkdir(parents=True, exist_ok=True)
        pixels = (ds.x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        masks = ds.mask.detach().cpu()[:, 0].numpy().astype(np.uint8) * 255
        for i, (label, source) in enumerate(zip(ds.y.tolist(), sources[name])):
            image_file, mask_file = f"images/{name}/{i:05d}.png", f"masks/{name}/{i:05d}.png"
            px = pixels[i]
            gray = (px[0] == px[1]).all() and (px[0] == px[2]).all()
            Image.fromarray(px[0] if gray else px.transpose(1, 2, 0)).save(out / image_file)
            Image.fromarray(masks[i]).save(out / mask_file)
            rows.append((image_file, str(label), rename.get(name, name), str(source), mask_file))
    path = out / "metadata.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label", "split", "source", "mask_filename"])
        writer.writerows(rows)
    return path


__all__ = ["CLASSES", "EXTERNAL_HOSPITALS", "HOSPITALS", "HOSPITAL_NAMES", "OWN_HOSPITALS",
           "PHANTOM_XRAYS_SPLITS", "SPLITS", "TRAIN_HOSPITALS", "build_phantom_xrays", "burn_in",
           "draw_chests", "export_xray_folder", "hospital_marks", "split_counts"]
