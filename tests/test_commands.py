"""The commands as Python functions (teakit.commands): cache refusal, evaluation with agreement."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from teakit import commands as C


def _run(args, **kw):
    return subprocess.run([TEA_BIN, *args], capture_output=True, text=True, timeout=600, env=ENV, **kw)


TEA_BIN = str(Path(sys.executable).parent / "tea")


ENV = dict(os.environ, OMP_NUM_THREADS="1")  # same thread count in every run: same float reductions


def test_cache_for_another_teacher_is_refused(teacher_dir, tmp_path):
    from teakit.runs import load_teacher
    from teakit.teachers.cache import eps_grid

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=16)["train"]
    C.teacher_cache(teacher, data, tmp_path / "cache", eps_grid(), progress=False)
    with torch.no_grad():
        teacher.classifier.head.weight.add_(0.01)
    with pytest.raises(ValueError, match="teacher_hash"):
        C.teacher_cache(teacher, data, tmp_path / "cache", eps_grid(), progress=False)


def test_cache_built_in_several_passes_holds_the_same_maps(teacher_dir, tmp_path, monkeypatch):
    from teakit.runs import load_teacher
    from teakit.teachers.cache import eps_grid

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=12)["train"]
    per_image, numel = 10 * 2, data.x[0].numel()
    assert C.cache_images_per_batch(per_image, numel) == 64  # 32×32: the cap of 64 images a pass
    assert C.cache_images_per_batch(per_image, numel, budget=5 * 4 * per_image * numel) == 5
    assert C.cache_images_per_batch(per_image, numel, budget=1) == 1
    assert C.cache_images_per_batch(1, 1) == 64
    whole, _ = C.teacher_cache(teacher, data, tmp_path / "whole", eps_grid(2), progress=False)
    passes = []
    heatmaps_all = type(teacher).heatmaps_all
    monkeypatch.setattr(type(teacher), "heatmaps_all", lambda self, x, *a, **k: passes.append(len(x))
                        or heatmaps_all(self, x, *a, **k))
    monkeypatch.setattr(C, "CACHE_BATCH_BYTES", 5 * 4 * per_image * numel)
    parts, _ = C.teacher_cache(teacher, data, tmp_path / "parts", eps_grid(2), progress=False)
    assert passes == [5, 5, 2]
    idx = torch.arange(12)
    for k in range(10):
        for e in range(2):
            a = whole.get(idx, torch.full((12,), k), torch.full((12,), e))
            b = parts.get(idx, torch.full((12,), k), torch.full((12,), e))
            assert torch.allclose(a.float(), b.float(), atol=1e-3 * a.float().abs().max().item())


def test_evaluate_writes_eval_json_with_agreement(teacher_dir, tmp_path):
    r = _run(["distill", "--dataset", "colored-digits", "--teacher", str(teacher_dir), "--limit", "64",
              "--epochs", "1", "--width", "8", "--feature-weight", "0", "--no-progress", "--out", str(tmp_path / "s")])
    assert r.returncode == 0, r.stderr
    assert "agreement=" in r.stdout and "heatmap_loss=" in r.stdout and "acc=" in r.stdout
    r = _run(["evaluate", "--model", str(tmp_path / "s"), "--json", str(tmp_path / "eval.json")])
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "eval.json").read_text())
    for split in ("id", "ood", "swapped"):
        assert 0 <= res["splits"][split]["accuracy"] <= 1
        assert 0 <= res["splits"][split]["agreement_with_teacher"] <= 1
    r = _run(["explain", "--dataset", "colored-digits", "--model", str(tmp_path / "s"), "--out",
              str(tmp_path / "figs"), "--n", "3"])
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "figs" / "explain-swapped.png").stat().st_size > 1000




def _tiny_folder(root, extra=()):
    """The shared 8-image folder dataset with its groups given as names, plus ``extra`` rows."""
    from disk_fixtures import FOLDER_ROWS, make_folder
    names = {0: "bear@coffee", 1: "owl@snow"}
    return make_folder(root, rows=[(f, lab, s, names[g], src) for f, lab, s, g, src in FOLDER_ROWS] + list(extra))


def _tiny_run(root, out, kind=None):
    """A 1-epoch width-4 run on the folder dataset at ``root`` (size 8): ERM, or a teacher of ``kind``."""
    from teakit.runs import model_spec
    from teakit.train import TrainConfig
    common = {"spec": model_spec("cnn", None, width=4), "cfg": TrainConfig(epochs=1, batch_size=8),
              "data_options": {"data_root": str(root), "size": 8}, "progress": False}
    if kind is None:
        C.train("folder", "erm", out, **common)
    else:
        C.train_teacher("folder", kind, out, seg_cfg=TrainConfig(epochs=1, batch_size=8), **common)
    return out


def test_evaluate_a_debiased_teacher_folder(teacher_dir, tmp_path, capsys, tea_cli):
    res = C.evaluate_run(None, teacher_dir)
    assert res["kind"] == "debiased" and res["dataset"] == "colored-digits" and res["data_options"] == {"limit": 256}
    alone = C.evaluate_run(None, teacher_dir / "classifier")  # the teacher is its classifier
    assert alone["kind"] == "run"
    for split in ("id", "ood", "swapped"):
        assert res["splits"][split] == alone["splits"][split]
        assert "agreement_with_teacher" not in res["splits"][split]
    rc, text = tea_cli(["evaluate", "--model", str(teacher_dir), "--limit", "16"])
    assert rc == 0 and "swapped" in text, text
    rc, text = tea_cli(["evaluate", "--model", str(teacher_dir), "--checkpoint", "last"])
    assert rc == 2 and "is a teacher folder" in text and "classifier" in text
    # options for datasets on disk are refused for a built-in dataset, naming the option
    for args, flag in ((["--data-root", str(tmp_path)], "--data-root"), (["--size", "16"], "--size"),
                       (["--lazy"], "--lazy")):
        rc, text = tea_cli(["evaluate", "--model", str(teacher_dir), *args])
        assert rc == 2 and f"{flag}: for datasets on disk" in text and "colored-digits" in text, text
    rc, text = tea_cli(["evaluate", "--model", str(tmp_path / "nothing")])
    assert rc == 2 and "neither a run folder" in text and "nor a teacher folder" in text


def test_evaluate_a_segmenter_teacher_whole_and_twice_alike(tmp_path):
    from teakit.evaluate import image_generators
    from teakit.runs import load_teacher

    root = tmp_path / "data"
    _tiny_folder(root)
    out = _tiny_run(root, tmp_path / "t", kind="segmenter")
    first, second = C.evaluate_run(None, out), C.evaluate_run(None, out)
    assert first == second  # the noise fill is seeded per image
    assert first["kind"] == "segmenter" and first["dataset"] == "folder"
    test = first["splits"]["test"]
    assert "background_relevance" in test and set(test["source_accuracy"]) == {"s1", "s2"}
    # the whole teacher (segmenter, fill, classifier) is what is evaluated
    teacher = load_teacher(out)
    data = C.load_data("folder", data_root=root, size=8)["test"]
    with torch.no_grad():
        pred = teacher(data.x, generator=image_generators(range(len(data)))).argmax(1)
    assert test["accuracy"] == (pred == data.y).float().mean().item()
    with pytest.raises(ValueError, match="holds a segmenter"):
        C.evaluate_run(None, out / "segmenter")
    # its decision is the mean over TEACHER_FILLS draws (teacher.json says so), and the kept evaluation logits
    # of a teacher of other fills are a file of their own
    from teakit.config import TEACHER_FILLS
    from teakit.runs import teacher_eval_logits, teacher_hash
    assert teacher.fills == TEACHER_FILLS > 1
    digest, gens = teacher_hash(teacher), lambda: image_generators(range(len(data)))
    with torch.no_grad():
        many, one = teacher(data.x, generator=gens()), teacher(data.x, generator=gens(), fills=1)
    (tmp_path / "k").mkdir()
    torch.testing.assert_close(teacher_eval_logits(teacher, tmp_path / "k", data, digest), many)
    teacher.fills = 1
    torch.testing.assert_close(teacher_eval_logits(teacher, tmp_path / "k", data, digest), one)
    assert len(list((tmp_path / "k" / "eval-logits").iterdir())) == 2
    # a folder written before the count was recorded keeps the one draw it was evaluated with
    meta = json.loads((out / "teacher.json").read_text())
    del meta["fills"]
    (out / "teacher.json").write_text(json.dumps(meta))
    assert load_teacher(out).fills == 1


def test_evaluate_with_data_root_of_a_second_copy(tmp_path, capsys, tea_cli):
    import shutil

    from disk_fixtures import png

    root = tmp_path / "data"
    _tiny_folder(root)
    model = _tiny_run(root, tmp_path / "m")
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)  # the same layout, with one more test set
    for name in ("img/n0.png", "img/n1.png"):
        png(copy / name)
    with open(copy / "metadata.csv", "a", newline="") as f:
        f.write("img/n0.png,cat,newtest,owl@snow,s3,\nimg/n1.png,dog,newtest,bear@coffee,s3,\n")
    rc, text = tea_cli(["evaluate", "--model", str(model), "--json", str(tmp_path / "orig.json")])
    assert rc == 0, text
    orig = json.loads((tmp_path / "orig.json").read_text())
    assert set(orig["splits"]) == {"test"} and orig["data_options"] == {"data_root": str(root), "size": 8}
    rc, text = tea_cli(["evaluate", "--model", str(model), "--data-root", str(copy), "--size", "12",
                      "--json", str(tmp_path / "copy.json")])
    assert rc == 0 and "newtest" in text, text
    res = json.loads((tmp_path / "copy.json").read_text())
    assert set(res["splits"]) == {"test", "newtest"} and res["splits"]["newtest"]["n"] == 2
    assert res["data_options"] == {"data_root": str(copy), "size": 12}
    assert res["splits"]["newtest"]["source_accuracy"].keys() == {"s3"}
    rc, text = tea_cli(["evaluate", "--model", str(model), "--external-sources", "s1"])
    assert rc == 2 and "--external-sources: for xray, not folder" in text
    # a copy with more classes than the model predicts is refused, naming the folder
    more = tmp_path / "more"
    shutil.copytree(root, more)
    for name in ("img/e0.png", "img/e1.png"):
        png(more / name)
    with open(more / "metadata.csv", "a", newline="") as f:
        f.write("img/e0.png,eel,train,owl@snow,s1,\nimg/e1.png,eel,test,owl@snow,s1,\n")
    rc, text = tea_cli(["evaluate", "--model", str(model), "--data-root", str(more)])
    assert rc == 2 and f"{more}: test labels go up to 2, but" in text and "predicts 2 classes" in text, text


def test_train_teacher_refuses_unknown_segmenter_backgrounds_before_training(tmp_path):
    with pytest.raises(ValueError, match="seg_backgrounds: unknown option.*blur.*paste, swap, synthetic, recolour"):
        C.train_teacher("digits-on-scenes", "segmenter", tmp_path / "t", seg_backgrounds={"blur": 0.5})
    with pytest.raises(ValueError, match="seg_unet: unknown option.*width.*base, depth"):
        C.train_teacher("digits-on-scenes", "segmenter", tmp_path / "t", seg_unet={"width": 16})
    with pytest.raises(ValueError, match="classifier_masks: unknown option.*paste.*masks, swap, recolour"):
        C.train_teacher("digits-on-scenes", "segmenter", tmp_path / "t", classifier_masks={"paste": 0.5})
    with pytest.raises(ValueError, match="masks='teacher'; expected one of true, segmenter"):
        C.train_teacher("digits-on-scenes", "segmenter", tmp_path / "t", classifier_masks={"masks": "teacher"})
    with pytest.raises(ValueError, match="--cls-swap.*need masks='segmenter'"):
        C.train_teacher("digits-on-scenes", "segmenter", tmp_path / "t", classifier_masks={"swap": 0.5})
    assert not (tmp_path / "t").exists()


def test_teacher_eval_logits_are_kept_and_computed_again_when_stale(teacher_dir, tmp_path, monkeypatch):
    from teakit import evaluate
    from teakit.runs import load_teacher, teacher_eval_logits, teacher_hash

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=16)
    calls, predict = [], evaluate.predict
    monkeypatch.setattr(evaluate, "predict", lambda *a, **k: calls.append(1) or predict(*a, **k))
    digest = teacher_hash(teacher)
    first = teacher_eval_logits(teacher, tmp_path, data["ood"], digest)
    assert torch.equal(first, predict(teacher, data["ood"].x)) and len(calls) == 1
    assert torch.equal(teacher_eval_logits(teacher, tmp_path, data["ood"], digest), first) and len(calls) == 1
    (kept,) = (tmp_path / "eval-logits").iterdir()
    teacher_eval_logits(teacher, tmp_path, data["ood"], "other weights")  # other weights: a file of their own
    assert len(calls) == 2 and len(list(kept.parent.iterdir())) == 2
    kept.write_bytes(kept.read_bytes()[:40])  # truncated: computed again and rewritten
    assert torch.equal(teacher_eval_logits(teacher, tmp_path, data["ood"], digest), first) and len(calls) == 3
    assert torch.equal(teacher_eval_logits(teacher, tmp_path, data["ood"], digest), first) and len(calls) == 3
    teacher_eval_logits(teacher, tmp_path, data["swapped"], digest)  # other data: a file of its own
    assert len(calls) == 4 and len(list(kept.parent.iterdir())) == 3
    (tmp_path / "a-file").write_text("")  # a folder that cannot hold the file: the logits all the same
    assert torch.equal(teacher_eval_logits(teacher, tmp_path / "a-file", data["ood"], digest), first)
    # evaluate_splits measures agreement against the logits it is given
    model = teacher.classifier
    pred = evaluate.predict(model, data["ood"].x).argmax(1)
    wrong = torch.nn.functional.one_hot((pred + 1) % 10, 10).float()
    res = evaluate.evaluate_splits(model, {"ood": data["ood"]}, teacher=teacher, relevance=False,
                                   teacher_logits={"ood": wrong})["splits"]["ood"]
    assert res["agreement_with_teacher"] == 0.0


def test_segmentation_trains_the_unet_it_is_given(tmp_path):
    from teakit.models import UNet
    from teakit.runs import load_model, model_spec
    from teakit.train import TrainConfig

    with pytest.raises(ValueError, match="segmentation trains a U-Net; got a 'cnn' model"):
        C.train("digits-on-scenes", "segmentation", tmp_path / "cnn", spec=model_spec("cnn", None),
                data_options={"limit": 16}, progress=False)
    C.train("digits-on-scenes", "segmentation", tmp_path / "u", spec=model_spec("unet", 1, base=4, depth=3),
            cfg=TrainConfig(epochs=1, batch_size=16), data_options={"limit": 16}, progress=False)
    unet = load_model(tmp_path / "u")[0]
    assert isinstance(unet, UNet) and unet.depth == 3 and unet.inc[0].out_channels == 4
