"""Tests for ``teakit.data.readers``: good datasets for each reader and one
test per bad-input case (the ``DataError`` message must name file and row)."""
import csv

import numpy as np
import pytest
import torch
from disk_fixtures import FOLDER_ROWS, make_folder, make_xray, mask_png, png, write_csv
from PIL import Image

from teakit.data.readers import (
    DataError,
    check_data,
    export_subpopbench,
    read_folder,
    read_waterbirds,
    read_xray,
)


def _rewrite(csv_path, edit):
    """Apply ``edit(header, rows)`` (in place) to a CSV file."""
    with open(csv_path, newline="") as f:
        data = list(csv.reader(f))
    header, rows = data[0], data[1:]
    edit(header, rows)
    write_csv(csv_path, header, rows)


def test_read_folder_good(tmp_path):
    make_folder(tmp_path)
    splits, info = read_folder(tmp_path, size=16)
    assert list(splits) == ["train", "val", "test"]
    tr = splits["train"]
    assert tr.x.shape == (4, 3, 16, 16) and tr.x.dtype == torch.float32
    assert tr.mask.shape == (4, 1, 16, 16) and tr.mask.dtype == torch.bool
    assert 0.0 <= tr.x.min() and tr.x.max() <= 1.0
    assert info["classes"] == ["cat", "dog"]
    assert tr.y.tolist() == [0, 0, 1, 1] and tr.bias.tolist() == [0, 1, 1, 0]
    # grayscale repeated over channels; masks: left half foreground
    assert torch.allclose(tr.x[1, 0], tr.x[1, 2]) and abs(tr.x[1].mean().item() - 128 / 255) < 1e-3
    assert tr.mask[:, :, :, :8].all() and not tr.mask[:, :, :, 8:].any()
    assert info["files"]["val"] == ["img/a2.png", "img/b2.png"]
    assert info["sources"]["train"] == ["s1", "s2", "s1", "s2"]
    assert info["sizes"]["train"] == [(8, 8), (8, 8), (8, 8), (12, 12)]


def test_read_folder_classes_order_extra_split_no_masks(tmp_path):
    rows = FOLDER_ROWS + [("img/c0.png", "dog", "ood", 0, "s3")]
    csv_path = make_folder(tmp_path, rows=rows, masks=False)
    _rewrite(csv_path, lambda h, rs: [r.pop() for r in rs] and h.pop())  # drop mask_filename
    splits, info = read_folder(tmp_path, size=8, classes=["dog", "cat"])
    assert list(splits) == ["train", "val", "test", "ood"]
    assert info["classes"] == ["dog", "cat"]
    assert splits["train"].y.tolist() == [1, 1, 0, 0] and splits["ood"].y.tolist() == [0]
    assert splits["train"].mask.all()


def test_read_waterbirds(tmp_path):
    rows, masks = [], tmp_path / "masks"
    spec = [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0), (0, 0, 1), (1, 1, 1), (0, 1, 2), (1, 0, 2)]
    for i, (y, place, split) in enumerate(spec):
        fname = f"{i:03d}.Bird/bird_{i}.jpg"
        (tmp_path / fname).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (12, 12), (10 * i, 50, 90)).save(tmp_path / fname, format="JPEG")
        mask_png(masks / fname.replace(".jpg", ".png"), size=(12, 12))
        rows.append((i + 1, fname, y, split, place))
    write_csv(tmp_path / "metadata.csv", ["img_id", "img_filename", "y", "split", "place"], rows)
    splits, info = read_waterbirds(tmp_path, size=8, masks_dir=masks)
    assert list(splits) == ["train", "val", "test"]
    assert info["classes"] == ["landbird", "waterbird"]
    for name, code in (("train", 0), ("val", 1), ("test", 2)):
        sel = [(y, p) for y, p, s in spec if s == code]
        assert splits[name].y.tolist() == [y for y, _ in sel]
        assert splits[name].bias.tolist() == [2 * y + p for y, p in sel]
    assert splits["train"].x.shape == (4, 3, 8, 8)
    assert splits["train"].mask[:, :, :, :4].all() and not splits["train"].mask[:, :, :, 4:].any()


def test_read_xray_external(tmp_path):
    make_xray(tmp_path)
    splits, info = read_xray(tmp_path, size=8, external_sources=("C",))
    assert list(splits) == ["train", "val", "test", "external"]
    assert info["files"]["external"] == ["x8.png", "x9.png", "x10.png"]
    assert info["sources"]["external"] == ["C", "C", "C"]
    for name in ("train", "val", "test"):
        assert "C" not in info["sources"][name]
        assert not set(info["files"][name]) & set(info["files"]["external"])
    assert info["source_names"] == ["A", "B", "C"]
    assert splits["train"].bias.tolist() == [0, 1, 1, 0] and splits["external"].bias.tolist() == [2] * 3
    assert info["classes"] == ["covid", "normal"] and splits["train"].y.tolist() == [1, 0, 1, 0]
    assert splits["external"].x.shape == (3, 3, 8, 8)


def test_check_data_summary(tmp_path):
    make_xray(tmp_path)
    png(tmp_path / "x0.png", size=(12, 12))
    splits, info = read_xray(tmp_path, size=8, external_sources=["C"])
    text = check_data(splits, info)
    assert "split train: 4 images" in text and "split external: 3 images" in text
    assert "per source: A: 2, B: 2" in text and "per source: C: 3" in text
    assert "12x12: 1" in text and "8x8: 3" in text
    assert "per group: 0: 2, 1: 2" in text and "per class: covid: 2, normal: 2" in text


def test_export_subpopbench_round_trip(tmp_path):
    make_folder(tmp_path / "data")
    _rewrite(tmp_path / "data" / "metadata.csv", lambda h, rs: rs.append(
        ["img/a0.png".replace("a0", "a9"), "cat", "extra", "1", "s1", ""]))
    png(tmp_path / "data" / "img" / "a9.png")
    splits, info = read_folder(tmp_path / "data", size=8)
    out = export_subpopbench(splits, info, tmp_path / "subpop.csv")
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["filename", "y", "a", "split"]
    expect = [(fname, int(y), int(a), {"train": 0, "val": 1, "test": 2}.get(name, 2))
              for name, ds in splits.items()
              for fname, y, a in zip(info["files"][name], ds.y.tolist(), ds.bias.tolist())]
    assert [(r["filename"], int(r["y"]), int(r["a"]), int(r["split"])) for r in rows] == expect
    assert expect[-1] == ("img/a9.png", 0, 1, 2)


# ---- bad inputs: one test per case -------------------------------------------------


def test_missing_csv(tmp_path):
    with pytest.raises(DataError, match="metadata.csv.*not found"):
        read_folder(tmp_path)


def test_missing_column(tmp_path):
    csv_path = make_folder(tmp_path)
    _rewrite(csv_path, lambda h, rs: [r.pop(2) for r in rs] and h.pop(2))  # drop split
    with pytest.raises(DataError, match=r"metadata\.csv: missing required column\(s\) split"):
        read_folder(tmp_path)


def test_empty_split(tmp_path):
    make_folder(tmp_path, rows=[r for r in FOLDER_ROWS if r[2] != "val"])
    with pytest.raises(DataError, match=r"metadata\.csv: split 'val' is empty"):
        read_folder(tmp_path)


def test_duplicate_filename(tmp_path):
    csv_path = make_folder(tmp_path)
    _rewrite(csv_path, lambda h, rs: rs[5].__setitem__(0, "img/a1.png"))
    with pytest.raises(DataError, match=r"metadata\.csv, row 7: duplicate filename img/a1\.png "
                                        r"\(already listed in row 3\)"):
        read_folder(tmp_path)


def test_missing_image(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "img" / "b2.png").unlink()
    with pytest.raises(DataError, match=r"metadata\.csv, row 7: image file .*b2\.png is missing"):
        read_folder(tmp_path)


def test_corrupt_image(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "img" / "a3.png").write_bytes(b"this is not a png at all" * 4)
    with pytest.raises(DataError, match=r"metadata\.csv, row 8: cannot decode image file .*a3\.png"):
        read_folder(tmp_path)


def test_mask_size_mismatch(tmp_path):
    make_folder(tmp_path)
    mask_png(tmp_path / "mask" / "b0.png", size=(12, 12))
    with pytest.raises(DataError, match=r"metadata\.csv, row 4: mask file .*b0\.png is 12x12 "
                                        r"but image .*b0\.png is 8x8"):
        read_folder(tmp_path)


def test_label_not_in_classes(tmp_path):
    make_folder(tmp_path)
    with pytest.raises(DataError, match=r"metadata\.csv, row 4: label 'dog' of img/b0\.png is not "
                                        r"one of the classes"):
        read_folder(tmp_path, classes=["cat", "bird"])


def test_val_label_never_in_train(tmp_path):
    rows = list(FOLDER_ROWS)
    rows[5] = ("img/b2.png", "fox", "val", 1, "s2")
    make_folder(tmp_path, rows=rows)
    with pytest.raises(DataError, match=r"metadata\.csv, row 7: val image img/b2\.png has label "
                                        r"'fox', which never occurs in train"):
        read_folder(tmp_path)


def test_nonfinite_float_image(tmp_path):
    make_xray(tmp_path)
    arr = np.full((8, 8), 0.5, dtype=np.float32)
    arr[2, 3] = np.nan
    Image.fromarray(arr).save(tmp_path / "x6.tif")
    _rewrite(tmp_path / "metadata.csv", lambda h, rs: rs[6].__setitem__(0, "x6.tif"))
    with pytest.raises(DataError, match=r"metadata\.csv, row 8: image file .*x6\.tif holds NaN"):
        read_xray(tmp_path)


def test_waterbirds_bad_split_code(tmp_path):
    png(tmp_path / "a.jpg")
    write_csv(tmp_path / "metadata.csv", ["img_id", "img_filename", "y", "split", "place"],
         [(1, "a.jpg", 0, 5, 0)])
    with pytest.raises(DataError, match=r"metadata\.csv, row 2: split of a\.jpg must be one of"):
        read_waterbirds(tmp_path)


def test_class_names_option_through_the_cli(tmp_path, capsys):
    from teakit.cli import main

    make_folder(tmp_path)
    assert main(["check-data", "--dataset", "folder", "--data-root", str(tmp_path), "--class-names",
                 "cat,dog"]) in (0, None)
    assert "train" in capsys.readouterr().out
    try:
        rc = main(["check-data", "--dataset", "folder", "--data-root", str(tmp_path), "--class-names", "cat,bird"])
    except SystemExit as e:
        rc = e.code
    captured = capsys.readouterr()
    assert rc != 0 and "row 4: label 'dog' of img/b0.png is not one of the classes" in captured.out + captured.err


def _group_column(csv_path, groups):
    """Set the group cell of every row of a folder table to ``groups[i]``."""
    def edit(header, rows):
        for r, g in zip(rows, groups):
            r[header.index("group")] = g
    _rewrite(csv_path, edit)


def test_read_folder_group_names_map_to_ids_train_names_first(tmp_path):
    # rows: train a0 a1 b0 b1, val a2 b2, test a3 b3; "zebra@val" occurs only outside train
    csv_path = make_folder(tmp_path)
    _group_column(csv_path, ["owl@snow", "bear@coffee", "", "owl@snow", "zebra@val", "bear@coffee", "-1", "aa@test"])
    splits, info = read_folder(tmp_path, size=8)
    # train names sorted (bear@coffee, owl@snow), then the others sorted (aa@test, zebra@val)
    assert info["group_names"] == ["bear@coffee", "owl@snow", "aa@test", "zebra@val"]
    assert splits["train"].bias.tolist() == [1, 0, -1, 1]
    assert splits["val"].bias.tolist() == [3, 0] and splits["test"].bias.tolist() == [-1, 2]
    assert "per group: -1: 1, 0 (bear@coffee): 1, 1 (owl@snow): 2" in check_data(splits, info)
    # the mapping does not depend on the row order
    _rewrite(csv_path, lambda h, rs: rs.reverse())
    splits2, info2 = read_folder(tmp_path, size=8)
    assert info2["group_names"] == info["group_names"]
    assert splits2["train"].bias.tolist() == [1, -1, 0, 1]


def test_read_folder_integer_groups_unchanged_and_sources_are_names(tmp_path):
    make_folder(tmp_path)
    splits, info = read_folder(tmp_path, size=8)
    assert "group_names" not in info and splits["train"].bias.tolist() == [0, 1, 1, 0]
    assert info["sources"]["test"] == ["s1", "s2"]  # sources are free text already


def test_read_folder_mixed_int_and_name_groups(tmp_path):
    csv_path = make_folder(tmp_path)
    _group_column(csv_path, ["-1", "bear@coffee", "owl@snow", "3", "", "owl@snow", "0", "1"])
    with pytest.raises(DataError, match=r"metadata\.csv, row 5: group '3' is an integer, but the group of "
                                        r"row 3 \('bear@coffee'\) is a name"):
        read_folder(tmp_path, size=8)
    _group_column(csv_path, ["2", "-1", "0", "cat@home", "0", "1", "0", "1"])
    with pytest.raises(DataError, match=r"row 5: group 'cat@home' is a name, but the group of row 2 \('2'\) "
                                        r"is an integer"):
        read_folder(tmp_path, size=8)
    _group_column(csv_path, ["0", "-2", "0", "1", "0", "1", "0", "1"])
    with pytest.raises(DataError, match=r"row 3: group must be >= -1, got -2"):
        read_folder(tmp_path, size=8)


def test_group_names_through_the_cli_check_data(tmp_path, capsys):
    from teakit.cli import main

    csv_path = make_folder(tmp_path)
    _group_column(csv_path, ["b", "a", "a", "b", "a", "b", "a", "b"])
    assert main(["check-data", "--dataset", "folder", "--data-root", str(tmp_path)]) in (0, None)
    assert "per group: 0 (a): 2, 1 (b): 2" in capsys.readouterr().out
