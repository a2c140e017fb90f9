"""Writers of tiny datasets on disk in the readers' layouts (PNG images, masks, metadata.csv), shared by tests."""
import csv
import gzip
import struct

import numpy as np
import torch
from PIL import Image

from teakit.data.colored_mnist import FILES


def png(path, size=(8, 8), color=(200, 30, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def mask_png(path, size=(8, 8)):
    """Left half foreground (255), right half background."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0]), dtype=np.uint8)
    arr[:, : size[0] // 2] = 255
    Image.fromarray(arr).save(path)


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


# filename, label, split, group, source
FOLDER_ROWS = [
    ("img/a0.png", "cat", "train", 0, "s1"),
    ("img/a1.png", "cat", "train", 1, "s2"),
    ("img/b0.png", "dog", "train", 1, "s1"),
    ("img/b1.png", "dog", "train", 0, "s2"),
    ("img/a2.png", "cat", "val", 0, "s1"),
    ("img/b2.png", "dog", "val", 1, "s2"),
    ("img/a3.png", "cat", "test", 1, "s1"),
    ("img/b3.png", "dog", "test", 0, "s2"),
]


def make_folder(root, rows=FOLDER_ROWS, masks=True):
    """Write images (+ masks) and ``metadata.csv``; returns the CSV path."""
    out = []
    for i, (fname, label, split, group, source) in enumerate(rows):
        if i == 1:
            png(root / fname, mode="L", color=128)  # grayscale -> RGB
        elif i == 2:
            png(root / fname, mode="RGBA", color=(0, 0, 255, 100))  # RGBA -> RGB
        elif i == 3:
            png(root / fname, size=(12, 12))
        else:
            png(root / fname)
        mask_name = fname.replace("img/", "mask/")
        if masks:
            mask_png(root / mask_name, size=(12, 12) if i == 3 else (8, 8))
        out.append((fname, label, split, group, source, mask_name if masks else ""))
    write_csv(root / "metadata.csv", ["filename", "label", "split", "group", "source", "mask_filename"], out)
    return root / "metadata.csv"


def make_xray(root):
    rows = []
    for i, (label, split, source) in enumerate(
            [("normal", "train", "A"), ("covid", "train", "B"), ("normal", "train", "B"),
             ("covid", "train", "A"), ("normal", "val", "A"), ("covid", "val", "B"),
             ("normal", "test", "A"), ("covid", "test", "B"),
             ("covid", "train", "C"), ("normal", "test", "C"), ("covid", "val", "C")]):
        png(root / f"x{i}.png", mode="L", color=20 * i)
        rows.append((f"x{i}.png", label, split, source))
    write_csv(root / "metadata.csv", ["filename", "label", "split", "source"], rows)


# ------------------------------------------------------------ COCO-on-Places image folders
LAYOUT = {"train": ((0, 1, 2), (0, 1), 2), "validtest": ((0, 1, 2), (0, 1), 1),
          "idtest": ((0, 1, 2), (0, 1), 1), "oodtest": ((0, 1, 2), (5,), 1), "sgtest": ((0, 1, 2), (1,), 1)}
CLASS_RGB = [(220, 20, 20), (20, 220, 20), (20, 20, 220)]


def scene(cls, place, side=12):
    """Background grey level by place, a class-coloured square in the middle; its mask."""
    img = np.full((side, side, 3), 30 * place + 10, dtype=np.uint8)
    mask = np.zeros((side, side), dtype=np.uint8)
    img[3:9, 3:9], mask[3:9, 3:9] = CLASS_RGB[cls], 255
    return img, mask


def make_coco_places(root, masks=True, layout=LAYOUT):
    """Write the image-folder layout; returns the number of images written."""
    n = 0
    for split, (classes, places, k) in layout.items():
        for c in classes:
            for p in places:
                for i in range(k):
                    img, mask = scene(c, p)
                    path = root / split / str(c) / str(p) / f"{n}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(img).save(path)
                    if masks:
                        mpath = root / "masks" / split / str(c) / str(p) / f"{n}.png"
                        mpath.parent.mkdir(parents=True, exist_ok=True)
                        Image.fromarray(mask).save(mpath)
                    n += 1
    # the anomaly split (a class outside the training classes) is not read
    (root / "anotest" / "9" / "0").mkdir(parents=True)
    Image.fromarray(scene(0, 0)[0]).save(root / "anotest" / "9" / "0" / "a.png")
    return n


# ------------------------------------------------------------ MNIST IDX files
N_TRAIN, N_TEST = 40, 20


def fake_digits(n, seed):
    rng = np.random.default_rng(seed)
    img = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):  # a random bright rectangle "stroke" plus faint noise
        r, c = rng.integers(2, 14, size=2)
        img[i, r:r + 10, c:c + 4] = rng.integers(150, 256)
        img[i] += rng.integers(0, 40, size=(28, 28)).astype(np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    return img, labels


def idx_bytes(arr, magic):
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_mnist(directory, gz=False):
    directory.mkdir(parents=True, exist_ok=True)
    tr_img, tr_lab = fake_digits(N_TRAIN, 1)
    te_img, te_lab = fake_digits(N_TEST, 2)
    content = {"train_images": idx_bytes(tr_img, 2051), "train_labels": idx_bytes(tr_lab, 2049),
               "test_images": idx_bytes(te_img, 2051), "test_labels": idx_bytes(te_lab, 2049)}
    for key, data in content.items():
        if gz:
            (directory / (FILES[key] + ".gz")).write_bytes(gzip.compress(data, mtime=0))
        else:
            (directory / FILES[key]).write_bytes(data)
    return tr_img, tr_lab, te_img, te_lab


# ------------------------------------------------------------ images with one disk each (in memory)
def disk_images(n=8, side=32, seed=0):
    """Images in [0, 1] with one coloured disk each, and the disk masks (n, 1, side, side)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    lo = side * 5 // 16
    cy = torch.randint(lo, side - lo, (n,), generator=g)
    cx = torch.randint(lo, side - lo, (n,), generator=g)
    r = torch.randint(max(2, side * 5 // 32), side * 9 // 32, (n,), generator=g)
    mask = ((yy - cy.view(-1, 1, 1)) ** 2 + (xx - cx.view(-1, 1, 1)) ** 2
            <= r.view(-1, 1, 1) ** 2).unsqueeze(1)
    x = 0.5 * torch.rand(n, 3, side, side, generator=g)
    x = torch.where(mask, x + torch.tensor([0.5, 0.0, 0.2]).view(1, 3, 1, 1), x)
    return x, mask
