"""Readers that load an on-disk image dataset into ``ImageSet`` splits.

Three layouts share one pipeline (``_read_table`` -> ``_Row`` list ->
``_check_rows`` -> ``_load_item`` per image -> ``_assemble``):

* ``read_folder(root)``: ``root/metadata.csv`` with columns
  ``filename,label,split[,group][,source][,mask_filename]``;
* ``read_waterbirds(root)``: the Sagawa et al. / WILDS ``metadata.csv`` with
  ``img_id,img_filename,y,split,place`` (split 0/1/2, group = 2*y + place);
* ``read_xray(root)``: ``filename,label,split,source[,mask_filename]``; rows
  whose source is in ``external_sources`` form the split ``external``.

Every reader returns ``(splits, info)``: ``splits`` maps a split name to an
``ImageSet`` (images decoded by :mod:`teakit.data.decode`: resized to ``size`` x
``size`` with bilinear filtering, grayscale / palette / RGBA converted to RGB --
or everything to luminance with ``color="gray"`` -- masks resized with nearest
neighbour; foreground = mask value > 127, an absent mask is all True) and
``info`` holds ``classes``, ``files`` / ``sizes`` (original ``(width, height)``)
per split, ``sources`` per split when the table has a source column, and
``attributes`` per split when the spurious attribute is not the group itself
(Waterbirds' place).  With ``lazy=True`` the images are validated as usual but
not kept: ``x`` and ``mask`` are :class:`~teakit.data.lazy.LazyImages` that
decode rows when indexed.

With ``validate=True`` (the default) the whole table and every image / mask
file are checked before any pixel goes into a tensor; problems raise
``DataError`` (a ``ValueError``) naming the CSV file, the 1-based row (the
header is row 1) and the image file.  With ``validate=False`` the semantic
checks (empty splits, duplicate filenames, labels unseen in train, mask sizes,
non-finite pixels, missing files up front) are skipped; problems the reader
cannot proceed past (no CSV, missing columns, unparseable values, undecodable
images) still raise ``DataError``.

``check_data(splits, info)`` summarises counts per split / class / group /
source and the original image sizes; ``export_subpopbench`` writes a
SubpopBench-style ``filename,y,a,split`` CSV.
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .decode import DataError, check_color, load_item
from .imageset import ImageSet
from .lazy import FileRows, LazyImages

STANDARD_SPLITS = ("train", "val", "test")
WATERBIRDS_CLASSES = ("landbird", "waterbird")
_SUBPOP_SPLIT = {"train": 0, "val": 1, "test": 2}


@dataclass
class _Row:
    """One image of a metadata table, in reader-independent form."""

    row: int | None           # 1-based CSV row (header = row 1); None: no table
    filename: str             # as written in the table (relative to the image root)
    label: str                # raw label text
    split: str
    group: int = -1
    source: str | None = None
    mask: Path | None = None  # full path of the mask file, if any
    attribute: int | None = None  # the spurious attribute alone (e.g. place), when not the group
    y: int = -1               # class index, set by _resolve_labels


def _where(csv_path: Path, row: int | None = None) -> str:
    return f"{csv_path}" if row is None else f"{csv_path}, row {row}"


def _read_table(csv_path: Path, required: tuple[str, ...]) -> tuple[list[str], list[tuple[int, dict]]]:
    """Read ``csv_path`` into ``(columns, [(row_number, record), ...])``;
    raise ``DataError`` when it is missing / unreadable or lacks a column of
    ``required``."""
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: metadata CSV not found")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            records = []
            for i, rec in enumerate(reader):
                records.append((i + 2, {(k or "").strip(): (v or "").strip() for k, v in rec.items()
                                        if k is not None}))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: cannot read metadata CSV ({exc})") from exc
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(f"{csv_path}: missing required column(s) {', '.join(missing)} "
                        f"(found: {', '.join(columns) or 'none'})")
    return columns, records


def _parse_int(value: str, what: str, csv_path: Path, row: int, allowed=None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise DataError(f"{_where(csv_path, row)}: {what} must be an integer, got {value!r}") from None
    if allowed is not None and number not in allowed:
        raise DataError(f"{_where(csv_path, row)}: {what} must be one of "
                        f"{sorted(allowed)}, got {number}")
    return number


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _resolve_labels(csv_path: Path, rows: list[_Row], classes) -> list[str]:
    """Set ``row.y`` for every row and return the class names.  Labels match
    ``classes`` by name or by integer index when given; otherwise integer labels
    are the class indices and string labels map to their sorted names."""
    for r in rows:
        if r.label == "":
            raise DataError(f"{_where(csv_path, r.row)}: empty label for {r.filename}")
    if classes is not None:
        classes = [str(c) for c in classes]
        index = {c: i for i, c in enumerate(classes)}
        for r in rows:
            if r.label in index:
                r.y = index[r.label]
            elif _is_int(r.label) and 0 <= int(r.label) < len(classes):
                r.y = int(r.label)
            else:
                raise DataError(f"{_where(csv_path, r.row)}: label {r.label!r} of {r.filename} is not "
                                f"one of the classes {classes}")
        return classes
    ids, names = name_index([r.label for r in rows])
    for r, y in zip(rows, ids):
        r.y = y
        if y < 0:
            raise DataError(f"{_where(csv_path, r.row)}: label {y} of {r.filename} is negative")
    return names


def name_index(texts: list[str]) -> tuple[list[int], list[str]]:
    """Indices and names of ``texts``: integers are their own indices (names
    ``"0"`` … ``str(max)``), otherwise the positions in the sorted distinct names."""
    if texts and all(_is_int(t) for t in texts):
        ids = [int(t) for t in texts]
        return ids, [str(i) for i in range(max(ids) + 1)]
    names = sorted(set(texts))
    index = {c: i for i, c in enumerate(names)}
    return [index[t] for t in texts], names


def _check_rows(csv_path: Path, rows: list[_Row], classes: list[str],
                required_splits=STANDARD_SPLITS) -> None:
    """Table-level checks: every required split non-empty, no duplicate
    filenames, every non-train label present in train."""
    present = {r.split for r in rows}
    for split in required_splits:
        if split not in present:
            raise DataError(f"{csv_path}: split {split!r} is empty (no rows)")
    first: dict[str, int] = {}
    for r in rows:
        if r.filename in first:
            raise DataError(f"{_where(csv_path, r.row)}: duplicate filename {r.filename} "
                            f"(already listed in row {first[r.filename]})")
        first[r.filename] = r.row
    train_labels = {r.y for r in rows if r.split == "train"}
    for r in rows:
        if r.split != "train" and r.y not in train_labels:
            raise DataError(f"{_where(csv_path, r.row)}: {r.split} image {r.filename} has label "
                            f"{classes[r.y]!r}, which never occurs in train")


def _assemble(csv_path: Path, image_root: Path, rows: list[_Row], classes: list[str], size: int,
              validate: bool, bias_of=None, has_source: bool = False,
              extra_info: dict | None = None, lazy: bool = False, color: str = "rgb"
              ) -> tuple[dict[str, ImageSet], dict]:
    """Decode every row (all checks first), then build one ``ImageSet`` per
    split (standard splits first, then others in order of appearance).  With
    ``lazy`` the pixels of that pass are dropped and ``x`` / ``mask`` are
    :class:`LazyImages` that decode rows again when indexed (without
    ``validate`` nothing is decoded up front and no sizes are recorded)."""
    check_color(color)
    if validate:  # cheap existence pass, so a missing file fails before any decoding
        for r in rows:
            for what, path in (("image", image_root / r.filename), ("mask", r.mask)):
                if path is not None and not path.is_file():
                    raise DataError(f"{_where(csv_path, r.row)}: {what} file {path} is missing")
    order = [s for s in STANDARD_SPLITS if any(r.split == s for r in rows)]
    for r in rows:
        if r.split not in order:
            order.append(r.split)
    decoded = {s: [] for s in order}
    for r in rows:
        if lazy and not validate:
            decoded[r.split].append((r, None, None, None))
            continue
        x, m, wh = load_item(image_root / r.filename, r.mask, size, _where(csv_path, r.row), validate, color)
        decoded[r.split].append((r, None, None, wh) if lazy else (r, x, m, wh))
    # every file checked: only now build tensors
    splits: dict[str, ImageSet] = {}
    info: dict = {"classes": list(classes), "files": {}, "sizes": {}}
    if has_source:
        info["sources"] = {}
    for s, items in decoded.items():
        rs = [it[0] for it in items]
        if lazy:
            files = FileRows(images=tuple(image_root / r.filename for r in rs), masks=tuple(r.mask for r in rs),
                             wheres=tuple(_where(csv_path, r.row) for r in rs), size=size, color=color)
            x, mask = LazyImages(files, "image"), LazyImages(files, "mask")
        else:
            x = torch.from_numpy(np.stack([it[1] for it in items]))
            mask = torch.from_numpy(np.stack([it[2] for it in items]))
        splits[s] = ImageSet(x=x, y=torch.tensor([r.y for r in rs], dtype=torch.int64), mask=mask,
                             bias=torch.tensor([bias_of(r) if bias_of else r.group for r in rs], dtype=torch.int64))
        info["files"][s] = [r.filename for r in rs]
        if items and items[0][3] is not None:
            info["sizes"][s] = [tuple(it[3]) for it in items]
        if has_source:
            info["sources"][s] = [r.source for r in rs]
        if any(r.attribute is not None for r in rows):
            info.setdefault("attributes", {})[s] = [-1 if r.attribute is None else r.attribute for r in rs]
    info.update(extra_info or {})
    return splits, info


def _mask_path(root: Path, value: str | None) -> Path | None:
    return root / value if value else None


def _require_fields(rec: dict, fields: tuple[str, ...], csv_path: Path, n: int) -> None:
    """Refuse a row whose ``fields`` are empty, naming the row (and the file when known)."""
    for field in fields:
        if not rec[field]:
            what = f" for {rec['filename']}" if field != "filename" else ""
            raise DataError(f"{_where(csv_path, n)}: empty {field}{what}")


def read_folder(root, size: int = 32, classes=None, validate: bool = True, *, lazy: bool = False,
                color: str = "rgb") -> tuple[dict[str, ImageSet], dict]:
    """Read ``root/metadata.csv`` (``filename,label,split[,group][,source]
    [,mask_filename]``, paths relative to ``root``).  Splits ``train``,
    ``val``, ``test`` are required; any other split name is kept as an extra
    test split.  ``group`` becomes ``ImageSet.bias``: integer ids (-1 = none) as
    written, or names (e.g. ``bear@coffee``) mapped to ids by :func:`group_ids` --
    the sorted names seen in ``train`` first, then the sorted names seen only in
    other splits -- with the names in id order in ``info["group_names"]``.  An
    empty cell (or -1) means no group in either form; integers and names mixed in
    one file are an error naming the row.  ``source`` is free text (a name or a
    number, kept as written in ``info["sources"]``).
    ``lazy`` and ``color``: see :func:`_assemble` and :mod:`teakit.data.decode`."""
    root = Path(root)
    csv_path = root / "metadata.csv"
    columns, records = _read_table(csv_path, ("filename", "label", "split"))
    rows = []
    for n, rec in records:
        _require_fields(rec, ("filename", "split"), csv_path, n)
        rows.append(_Row(row=n, filename=rec["filename"], label=rec["label"], split=rec["split"],
                         source=rec.get("source") if "source" in columns else None,
                         mask=_mask_path(root, rec.get("mask_filename"))))
    group_names = None
    if "group" in columns:
        ids, group_names = group_ids(csv_path, [(n, rec.get("group", ""), r.split)
                                                for (n, rec), r in zip(records, rows)])
        for r, g in zip(rows, ids):
            r.group = g
    return _finish(csv_path, root, rows, classes, size, validate, has_source="source" in columns,
                   lazy=lazy, color=color, extra_info={"group_names": group_names} if group_names else None)


def group_ids(csv_path: Path, cells: list[tuple[int, str, str]]) -> tuple[list[int], list[str] | None]:
    """The group id of every ``(row, group cell, split)`` of a table, and the group names
    (None when the groups are integers).

    Integer cells are the ids themselves (>= -1).  Name cells are numbered
    deterministically, whatever the row order: the distinct names of ``train`` rows in
    sorted order get ids 0, 1, ..., then the names found only in other splits, sorted;
    the names, in id order, are returned.  An empty cell, or -1, means no group (-1)
    in both forms.  Integers (other than -1) and names in one table raise
    ``DataError`` naming the first row whose form differs from the first group's."""
    first = None  # (row, text, is_int) of the first group given
    for n, text, _ in cells:
        if text == "" or text == "-1":
            continue
        is_int = _is_int(text)
        if first is None:
            first = (n, text, is_int)
        elif is_int != first[2]:
            kind = {True: "an integer", False: "a name"}
            raise DataError(f"{_where(csv_path, n)}: group {text!r} is {kind[is_int]}, but the group of row "
                            f"{first[0]} ({first[1]!r}) is {kind[first[2]]}; give every group as an integer id "
                            "or every group as a name, not both (empty or -1: no group)")
    if first is None or first[2]:
        ids = []
        for n, text, _ in cells:
            group = -1 if text == "" else _parse_int(text, "group", csv_path, n)
            if group < -1:
                raise DataError(f"{_where(csv_path, n)}: group must be >= -1, got {group}")
            ids.append(group)
        return ids, None
    named = [(text, split) for _, text, split in cells if text not in ("", "-1")]
    in_train = sorted({t for t, split in named if split == "train"})
    names = in_train + sorted({t for t, _ in named} - set(in_train))
    index = {name: i for i, name in enumerate(names)}
    return [index.get(text, -1) for _, text, _ in cells], names


def _finish(csv_path, image_root, rows, classes, size, validate, bias_of=None, has_source=False,
            extra_info=None, required_splits=STANDARD_SPLITS, lazy=False, color="rgb"):
    """Shared tail of the readers: labels, table checks, decoding, tensors."""
    if not rows:
        raise DataError(f"{csv_path}: metadata CSV has no rows")
    names = _resolve_labels(csv_path, rows, classes)
    if validate:
        _check_rows(csv_path, rows, names, required_splits)
    return _assemble(csv_path, image_root, rows, names, size, validate, bias_of, has_source, extra_info,
                     lazy=lazy, color=color)


def read_waterbirds(root, size: int = 32, masks_dir=None, validate: bool = True, *, lazy: bool = False,
                    color: str = "rgb") -> tuple[dict[str, ImageSet], dict]:
    """Read the Waterbirds layout (Sagawa et al. 2020 / WILDS):
    ``root/metadata.csv`` with ``img_id,img_filename,y,split,place``; split
    0/1/2 = train/val/test; bias = group = 2*y + place (``info["attributes"]``:
    the place).  With ``masks_dir``, the mask of ``a/b.jpg`` is ``masks_dir/a/b.png``."""
    root = Path(root)
    csv_path = root / "metadata.csv"
    _, records = _read_table(csv_path, ("img_id", "img_filename", "y", "split", "place"))
    split_names = {0: "train", 1: "val", 2: "test"}
    rows = []
    for n, rec in records:
        fname = rec["img_filename"]
        if not fname:
            raise DataError(f"{_where(csv_path, n)}: empty img_filename")
        y = _parse_int(rec["y"], f"y of {fname}", csv_path, n, allowed={0, 1})
        place = _parse_int(rec["place"], f"place of {fname}", csv_path, n, allowed={0, 1})
        split = _parse_int(rec["split"], f"split of {fname}", csv_path, n, allowed={0, 1, 2})
        mask = Path(masks_dir) / Path(fname).with_suffix(".png") if masks_dir is not None else None
        rows.append(_Row(row=n, filename=fname, label=str(y), split=split_names[split],
                         group=2 * y + place, mask=mask, attribute=place))
    return _finish(csv_path, root, rows, WATERBIRDS_CLASSES, size, validate, lazy=lazy, color=color,
                   extra_info={"group_names": ["landbird/land", "landbird/water",
                                               "waterbird/land", "waterbird/water"]})


def read_xray(root, size: int = 32, external_sources=(), classes=None, validate: bool = True, *,
              lazy: bool = False, color: str = "rgb") -> tuple[dict[str, ImageSet], dict]:
    """Read ``root/metadata.csv`` (``filename,label,split,source
    [,mask_filename]``).  Rows whose ``source`` is in ``external_sources`` are
    moved from every split to the split ``external``; bias = index of the
    source in the sorted names of all sources (``info["source_names"]``)."""
    root = Path(root)
    csv_path = root / "metadata.csv"
    _, records = _read_table(csv_path, ("filename", "label", "split", "source"))
    external = {str(s) for s in external_sources}
    rows = []
    for n, rec in records:
        _require_fields(rec, ("filename", "split", "source"), csv_path, n)
        split = "external" if rec["source"] in external else rec["split"]
        rows.append(_Row(row=n, filename=rec["filename"], label=rec["label"], split=split,
                         source=rec["source"], mask=_mask_path(root, rec.get("mask_filename"))))
    source_names = sorted({r.source for r in rows})
    unknown = sorted(external - set(source_names))
    if unknown:
        raise DataError(f"{csv_path}: external source(s) {', '.join(unknown)} never occur "
                        f"(sources: {', '.join(source_names)}); split 'external' would be empty")
    index = {s: i for i, s in enumerate(source_names)}
    return _finish(csv_path, root, rows, classes, size, validate, bias_of=lambda r: index[r.source],
                   has_source=True, extra_info={"source_names": source_names}, lazy=lazy, color=color)


def _fmt(counter: Counter) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items(), key=lambda kv: str(kv[0]))) or "-"


def check_data(splits: dict[str, ImageSet], info: dict) -> str:
    """A human-readable summary: per split the image count and the counts per
    class, group (bias; ``id (name)`` where ``info["group_names"]`` names it), source
    and original image size."""
    classes = info.get("classes")
    lines = [f"classes: {', '.join(map(str, classes))}" if classes else "classes: ?"]
    total = 0
    for name, ds in splits.items():
        total += len(ds)
        ys = ds.y.tolist()
        lines.append(f"split {name}: {len(ds)} images")
        lines.append("  per class: " + _fmt(Counter(classes[y] if classes and y < len(classes) else y
                                                    for y in ys)))
        names = info.get("group_names") or []
        lines.append("  per group: " + _fmt(Counter(f"{g} ({names[g]})" if 0 <= g < len(names) else g
                                                    for g in ds.bias.tolist())))
        sources = info.get("sources", {}).get(name)
        if sources is not None:
            lines.append("  per source: " + _fmt(Counter(sources)))
        sizes = info.get("sizes", {}).get(name)
        if sizes is not None:
            lines.append("  sizes seen: " + _fmt(Counter(f"{w}x{h}" for w, h in sizes)))
    norm = info.get("normalize")
    if norm:
        lines.append(f"normalize: {norm['mode']} (mean {', '.join(f'{v:.4f}' for v in norm['mean'])}; "
                     f"std {', '.join(f'{v:.4f}' for v in norm['std'])})")
    lines.append(f"total: {total} images in {len(splits)} splits")
    return "\n".join(lines)


def export_subpopbench(splits: dict[str, ImageSet], info: dict, path) -> Path:
    """Write ``filename,y,a,split`` (a = ``info["attributes"]`` when the reader
    gives the spurious attribute apart from the group, else the bias attribute;
    split 0/1/2 for train/val/test, every other split as 2) to ``path``; returns
    the path."""
    path = Path(path)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "y", "a", "split"])
        for name, ds in splits.items():
            files = info["files"][name]
            if len(files) != len(ds):
                raise DataError(f"{path}: info['files'][{name!r}] has {len(files)} names for "
                                f"{len(ds)} images")
            code = _SUBPOP_SPLIT.get(name, 2)
            attrs = info.get("attributes", {}).get(name, ds.bias.tolist())
            for fname, y, a in zip(files, ds.y.tolist(), attrs):
                writer.writerow([fname, y, a, code])
    return path


__all__ = ["DataError", "read_folder", "read_waterbirds", "read_xray", "check_data",
           "export_subpopbench"]
