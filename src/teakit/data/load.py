"""Any dataset's splits by name: a built-in benchmark or one read from disk.

:func:`load_data` is what the commands, the report and the studies call;
:func:`read_disk_dataset` reads and validates a dataset on disk
(:data:`teakit.data.names.DISK_DATASETS`).  The readers are imported when a
dataset on disk is read, so loading a built-in benchmark does not import them.
"""
from __future__ import annotations

from pathlib import Path

from . import load_builtin
from .names import DISK_DATASETS

# datasets whose ImageSet.bias already is the group (else groups are (label, bias) pairs: for xray and
# phantom-xrays, whose bias is the hospital, GroupDRO's groups are (label, hospital))
BIAS_IS_GROUP = ("folder", "waterbirds", "coco-on-places", "glyphs-on-places")
TRAINING_SPLITS = ("train", "val", "train_debiased")
# reading options and their defaults (class_names: "a,b,c", the classes in label order)
DISK_OPTIONS = {"lazy": False, "normalize": "none", "color": "rgb", "class_names": None}


def load_data(dataset: str, data_seed: int = 0, limit: int | None = None, data_root=None,
              external_sources=(), size: int = 32, *, with_info: bool = False, **options):
    """A dataset's splits as :class:`~teakit.data.ImageSet` s: a built-in one, or one
    read (and validated) from ``data_root`` (``DISK_DATASETS``; options ``lazy``,
    ``normalize``, ``color``: see :func:`read_disk_dataset`).  ``limit`` keeps the
    first ``limit`` images of each split.  ``with_info``: return ``(splits, info)``
    (the reader's info, cut to ``limit``; for a built-in dataset what its builder records:
    ``{}`` but for ``phantom-xrays``, whose info names the hospital of every image)."""
    disk = {k: options.pop(k) for k in DISK_OPTIONS if k in options}
    if dataset in DISK_DATASETS:
        splits, info = read_disk_dataset(dataset, data_root, external_sources, size, seed=data_seed,
                                         bias=options.pop("bias", 1.0), **disk)
        if options:
            raise ValueError(f"options {sorted(options)} do not apply to dataset {dataset}")
    else:
        if data_root is not None:
            raise ValueError(f"--data-root is for {', '.join(DISK_DATASETS)}; {dataset} is built in")
        changed = sorted(k for k, v in disk.items() if v != DISK_OPTIONS[k])
        if changed:
            raise ValueError(f"{', '.join('--' + k for k in changed)}: for datasets on disk, not {dataset}")
        splits, info = load_builtin(dataset, seed=data_seed, with_info=True, **options)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        splits = {k: v.subset(slice(0, limit)) for k, v in splits.items()}
        info = {k: ({s: v[:limit] for s, v in val.items()} if k in ("files", "sizes", "sources", "attributes")
                    else val) for k, val in info.items()}
    return (splits, info) if with_info else splits


def num_classes_of(data: dict) -> int:
    """Number of classes: one more than the largest label in any split."""
    return max(int(d.y.max()) for d in data.values() if len(d)) + 1


def read_disk_dataset(dataset: str, data_root, external_sources=(), size: int = 32, *,
                      seed: int = 0, bias: float = 1.0, lazy: bool = False, normalize: str = "none",
                      color: str = "rgb", class_names: str | None = None):
    """``(splits, info)`` of a dataset on disk, validated before anything is trained.

    ``colored-mnist`` reads the MNIST IDX files in ``data_root`` (or
    ``data_root/MNIST/raw``) and colours them with ``seed`` / ``bias`` like
    ``colored-digits``; the other datasets ignore ``seed`` and ``bias``.
    ``lazy``: image files are decoded when their batch is drawn (after one
    validation pass), not held in memory.  ``color``: ``rgb`` or ``gray``
    (:mod:`teakit.data.decode`).  ``normalize``: ``none``, ``imagenet`` or
    ``dataset`` (:mod:`teakit.data.normalize`; recorded in ``info["normalize"]``).
    ``class_names`` ("a,b,c"; folder, xray, coco-on-places): the classes, in label
    order — a label outside them is an error naming the file and row."""
    from . import readers
    from .normalize import normalize_splits

    if data_root is None:
        raise ValueError(f"dataset {dataset} is read from disk: give --data-root")
    kw = {"lazy": lazy, "color": color}
    if class_names is not None:
        if dataset in ("colored-mnist", "waterbirds"):
            raise ValueError(f"--class-names: {dataset} has fixed classes")
        kw["classes"] = [c.strip() for c in class_names.split(",") if c.strip()]
    if dataset == "colored-mnist":
        if lazy or color != "rgb":
            raise ValueError("colored-mnist is built in memory from the IDX files and its colours are the "
                             "shortcut: --lazy and --color gray do not apply")
        from .colored_mnist import read_colored_mnist
        splits, info = read_colored_mnist(data_root, size=size, seed=seed, bias=bias)
    elif dataset == "folder":
        splits, info = readers.read_folder(data_root, size=size, **kw)
    elif dataset == "waterbirds":
        masks = Path(data_root) / "masks"
        splits, info = readers.read_waterbirds(data_root, size=size, masks_dir=masks if masks.is_dir() else None,
                                               **kw)
    elif dataset == "coco-on-places":
        from .coco_places import read_coco_on_places
        splits, info = read_coco_on_places(data_root, size=size, **kw)
    else:
        splits, info = readers.read_xray(data_root, size=size, external_sources=tuple(external_sources), **kw)
    splits, record = normalize_splits(splits, normalize)
    if record is not None:
        info["normalize"] = record
    return splits, info
