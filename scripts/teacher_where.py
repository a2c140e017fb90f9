"""Where a segmenter teacher loses on shifted scenes: per split, its U-Net's mask IoU and its classifier on the
U-Net's masks against the ground-truth masks (same fill).  Usage: python scripts/teacher_where.py BENCHMARK TEACHER_DIR"""
import sys
import torch
from teakit.data.load import load_data
from teakit.objectives.segmentation import mask_iou
from teakit.runs import load_teacher
from teakit.teachers.segmenter import fill_background
bench, tdir = sys.argv[1], sys.argv[2]
data = load_data(bench, 0)
t = load_teacher(tdir).eval()
for split in [s for s in data if s not in ("train", "train_debiased")]:
    d = data[split]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        m = torch.cat([t.mask(d.x[i:i + 256]) for i in range(0, len(d), 256)])
        iou = mask_iou(m, d.mask)
        unet = torch.cat([t.classifier(fill_background(d.x[i:i + 256], m[i:i + 256], t.fill, g)).argmax(1) for i in range(0, len(d), 256)])
        gt = torch.cat([t.classifier(fill_background(d.x[i:i + 256], d.mask[i:i + 256], t.fill, g)).argmax(1) for i in range(0, len(d), 256)])
    print(f"{bench} {split}: U-Net IoU {100 * iou.mean():.1f}; classifier on U-Net masks {100 * (unet == d.y).float().mean():.1f}, on true masks {100 * (gt == d.y).float().mean():.1f}")
