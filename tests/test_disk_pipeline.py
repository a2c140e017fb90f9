"""The Waterbirds and X-ray readers run the whole TEA pipeline on tiny fixtures:
segmenter teacher -> TEA student -> evaluation with worst-group / external-source
figures; and a bad dataset stops `tea` before training with the file's name."""
import json

import pytest
from disk_fixtures import make_xray, mask_png, png, write_csv


def make_waterbirds(root, n=8):
    rows, k = [], 0
    for split in (0, 1, 2):
        for y in (0, 1):
            for place in (0, 1):
                for _ in range(n if split == 0 else 2):
                    name = f"imgs/{k:03d}.png"
                    colour = (200, 40, 40) if y else (40, 40, 200)
                    png(root / name, size=(16, 16), color=colour)
                    mask_png(root / "masks" / name, size=(16, 16))
                    rows.append([k, name, y, split, place])
                    k += 1
    write_csv(root / "metadata.csv", ["img_id", "img_filename", "y", "split", "place"], rows)


@pytest.mark.parametrize("dataset", ["waterbirds", "xray", "coco-on-places"])
def test_disk_dataset_full_tea_pipeline(dataset, tmp_path, capsys, tea_cli):
    root = tmp_path / "data"
    if dataset == "waterbirds":
        make_waterbirds(root)
        extra = []
    elif dataset == "coco-on-places":
        from disk_fixtures import make_coco_places
        make_coco_places(root)
        extra = ["--lazy", "--normalize", "dataset"]  # images decoded per batch, train-split statistics
    else:
        make_xray(root)
        extra = ["--external-sources", "C"]
    data = ["--dataset", dataset, "--data-root", str(root), "--size", "16", *extra]
    common = [*data, "--epochs", "1", "--width", "4", "--batch-size", "8", "--no-progress"]
    rc, text = tea_cli(["check-data", "--dataset", dataset, "--data-root", str(root), "--size", "16", *extra])
    assert rc == 0, text
    assert "train" in text
    rc, text = tea_cli(["train-teacher", *common, "--kind", "segmenter", "--seg-epochs", "1",
                        "--seg-paste", "1.5", "--out", str(tmp_path / "t")])
    assert rc != 0 and "--seg-paste" in text and not (tmp_path / "t").exists()
    rc, text = tea_cli(["train-teacher", *common, "--kind", "segmenter", "--seg-epochs", "1",
                        "--seg-paste", "0.5", "--seg-swap", "0.25", "--seg-synthetic", "0.1", "--seg-recolour", "0.75",
                        "--cls-masks", "segmenter", "--cls-swap", "0.5", "--seg-base", "4", "--seg-depth", "1",
                        "--out", str(tmp_path / "t")])
    assert rc == 0, text
    from teakit.runs import load_model
    unet, unet_config = load_model(tmp_path / "t" / "segmenter")
    assert (unet.inc[0].out_channels, unet.depth) == (4, 1)
    assert unet_config["objective"] == {
        "name": "segmentation", "threshold": 0.5, "paste": 0.5, "swap": 0.25, "synthetic": 0.1, "recolour": 0.75}
    assert load_model(tmp_path / "t" / "classifier")[1]["objective"] == {
        "name": "erm", "fill": "noise", "masks": "segmenter", "threshold": 0.5, "swap": 0.5, "recolour": 0.0}
    rc, text = tea_cli(["distill", *common, "--teacher", str(tmp_path / "t"), "--out", str(tmp_path / "s")])
    assert rc == 0, text
    rc, text = tea_cli(["evaluate", "--model", str(tmp_path / "s"), "--json", str(tmp_path / "e.json")])
    assert rc == 0, text
    res = json.loads((tmp_path / "e.json").read_text())["splits"]
    test = "id" if dataset == "coco-on-places" else "test"
    assert test in res and "worst_group_accuracy" in res[test]
    assert res[test]["worst_group_accuracy"] <= max(res[test]["group_accuracy"].values())
    if dataset == "xray":
        assert "external" in res and "agreement_with_teacher" in res["external"]
        # per-source figures; the external source only in its own split
        assert set(res["external"]["source_accuracy"]) == {"C"} and "C" in res["external"]["source_auc"]
        assert set(res["test"]["source_accuracy"]) == {"A", "B"} and set(res["test"]["source_auc"]) == {"A", "B"}
        assert "source A: accuracy=" in text
    if dataset == "coco-on-places":
        assert set(res) == {"id", "ood", "sg"} and "background_relevance" in res["sg"]


def test_bad_dataset_stops_before_training_naming_the_file(tmp_path, capsys, tea_cli):
    root = tmp_path / "data"
    make_waterbirds(root)
    (root / "imgs" / "003.png").write_bytes(b"not a png")
    rc, text = tea_cli(["train-teacher", "--dataset", "waterbirds", "--data-root", str(root), "--kind", "segmenter",
                     "--epochs", "1", "--no-progress", "--out", str(tmp_path / "t")])
    assert rc != 0 and "003.png" in text and "row" in text
    assert not (tmp_path / "t" / "segmenter" / "last.json").exists()


def test_colored_mnist_through_the_cli(tmp_path, capsys, monkeypatch, tea_cli):
    from disk_fixtures import write_mnist

    root = tmp_path / "mnist"
    write_mnist(root)
    common = ["--dataset", "colored-mnist", "--data-root", str(root), "--size", "28", "--epochs", "1",
              "--width", "4", "--batch-size", "8", "--no-progress"]
    rc, text = tea_cli(["train-teacher", *common, "--kind", "debiased", "--out", str(tmp_path / "t")])
    assert rc == 0, text
    rc, text = tea_cli(["distill", *common, "--teacher", str(tmp_path / "t"), "--out", str(tmp_path / "s")])
    assert rc == 0, text
    rc, text = tea_cli(["evaluate", "--model", str(tmp_path / "s"), "--json", str(tmp_path / "e.json")])
    assert rc == 0, text
    assert set(json.loads((tmp_path / "e.json").read_text())["splits"]) == {"id", "ood", "swapped"}
    # --pretrained never downloads: a clear error naming where the weights must be
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    rc, text = tea_cli(["train", *common, "--model", "resnet18", "--pretrained", "--out", str(tmp_path / "r")])
    assert rc != 0 and "resnet18-" in text and str(tmp_path / "torch") in text


@pytest.mark.parametrize("dataset", ["waterbirds", "xray"])
def test_groupdro_groups_follow_the_dataset(dataset, tmp_path, capsys, tea_cli):
    """Waterbirds' bias already is the group (2·y + place): GroupDRO uses it as is;
    X-ray's bias is the source: groups are (label, source) pairs."""
    from teakit import commands as C
    from teakit.checkpoint import load_checkpoint

    root = tmp_path / "data"
    make_waterbirds(root) if dataset == "waterbirds" else make_xray(root)
    rc, text = tea_cli(["train", "--dataset", dataset, "--data-root", str(root), "--size", "16", "--objective",
                     "groupdro", "--epochs", "1", "--width", "4", "--batch-size", "8", "--no-progress",
                     "--out", str(tmp_path / "g")])
    assert rc == 0, text
    objective = load_checkpoint(tmp_path / "g", "last").config["objective"]
    data = C.load_data(dataset, data_root=root, size=16)
    n_bias = int(max(data["train"].bias.max(), data["val"].bias.max())) + 1
    if dataset == "waterbirds":
        assert objective["groups"] == "bias" and objective["num_groups"] == 4 == n_bias
    else:
        K = int(data["train"].y.max()) + 1
        assert objective["groups"] == "label_bias" and objective["num_groups"] == K * n_bias
