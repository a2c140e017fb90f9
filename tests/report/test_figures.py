"""`tea explain` (teakit.report.figures.explain_figure): any split, class names as row labels,
images picked across the classes."""
import pytest
import torch
from disk_fixtures import make_folder

from teakit.report import figures
from teakit.report.figures import explain_figure, pick_across_classes

CLASSES = ("cat", "dog", "owl")


def test_pick_across_classes_round_robin_seeded():
    y = torch.tensor([0] * 5 + [1] * 5 + [2] * 5)  # the first images are all one class
    for n in (1, 2, 3, 4, 7, 15):
        idx = pick_across_classes(y, n, seed=0)
        assert len(idx) == n == len(set(idx))
        classes = y[idx].tolist()
        assert len(set(classes)) == min(n, 3), (n, classes)
        assert max(classes.count(c) for c in set(classes)) - min(classes.count(c) for c in set(classes)) <= 1
        assert classes == sorted(classes)  # rows grouped by class
        assert idx == pick_across_classes(y, n, seed=0)  # deterministic
    assert sorted(pick_across_classes(y, 99)) == list(range(15))  # every image when n exceeds them
    assert any(pick_across_classes(y, 3, seed=s) != pick_across_classes(y, 3, seed=0) for s in range(1, 5))
    # a rare class still gets its turn
    rare = torch.tensor([1] * 9 + [0])
    assert 9 in pick_across_classes(rare, 2, seed=3)
    with pytest.raises(ValueError, match="n must be >= 1"):
        pick_across_classes(y, 0)


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A 1-epoch ERM run on a folder dataset whose test split lists 3 images of each class, class by class."""
    from teakit import commands as C
    from teakit.runs import model_spec
    from teakit.train import TrainConfig

    root = tmp_path_factory.mktemp("explain")
    rows = [(f"img/{split}-{c}{i}.png", c, split, 0, "s")
            for split, k in (("train", 2), ("val", 1), ("test", 3)) for c in CLASSES for i in range(k)]
    make_folder(root / "data", rows=rows)
    C.train("folder", "erm", root / "m", spec=model_spec("cnn", None, width=4), cfg=TrainConfig(epochs=1),
            data_options={"data_root": str(root / "data"), "size": 8}, progress=False)
    return root / "m"


def _capture_titles(monkeypatch):
    seen = {}

    def grid(images, maps, path, titles=None):
        seen.update(images=images, maps=maps, path=path, titles=titles)
        return path
    monkeypatch.setattr(figures, "heatmap_grid", grid)
    return seen


def test_explain_folder_test_split_with_class_names_across_classes(folder_run, tmp_path, monkeypatch):
    seen = _capture_titles(monkeypatch)
    path = explain_figure(None, folder_run, tmp_path, split="test", n=3)
    assert path == tmp_path / "explain-test.png"
    assert sorted(seen["titles"]) == list(CLASSES)  # one image of each class, named
    assert len(seen["images"]) == 3 and list(seen["maps"]) == ["m"]
    explain_figure(None, folder_run, tmp_path, split="test", n=5)
    counts = sorted(seen["titles"].count(c) for c in CLASSES)
    assert counts == [1, 2, 2]  # round robin: every class once, then two of them again
    with pytest.raises(ValueError, match=r"--split 'swapped': folder has no such split; its splits: train, val, test"):
        explain_figure(None, folder_run, tmp_path, split="swapped")


def test_explain_through_the_cli_writes_the_png(folder_run, tmp_path, capsys):
    from teakit.cli import main

    assert main(["explain", "--model", str(folder_run), "--out", str(tmp_path), "--split", "test", "--n", "4"]) == 0
    assert (tmp_path / "explain-test.png").stat().st_size > 1000
    assert main(["explain", "--model", str(folder_run), "--out", str(tmp_path), "--split", "nope"]) == 2
    assert "its splits: train, val, test" in capsys.readouterr().err


def test_explain_a_teacher_folder_on_a_builtin_split(teacher_dir, tmp_path, monkeypatch):
    seen = _capture_titles(monkeypatch)
    explain_figure(None, teacher_dir, tmp_path, split="ood", n=4)
    assert list(seen["maps"]) == ["teacher"] and len(seen["titles"]) == 4
    assert len(set(seen["titles"])) == 4 and all(t in [str(d) for d in range(10)] for t in seen["titles"])
