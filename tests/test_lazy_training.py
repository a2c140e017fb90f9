"""A lazy run that meets a bad file mid-epoch (corrupted or deleted after the
dataset was validated) stops with the file's name, leaves its last checkpoint
untouched, and finishes with --resume once the file is back -- ending where an
uninterrupted run ends."""
import pytest
import torch
from disk_fixtures import make_folder

import teakit.train as train_mod
from teakit.checkpoint import load_checkpoint
from teakit.cli import main


def _args(root, out, *extra):
    return ["train", "--dataset", "folder", "--data-root", str(root), "--size", "8", "--lazy", "--epochs", "2",
            "--batch-size", "8", "--width", "4", "--depth", "2", "--no-progress", "--out", str(out), *extra]


def _snapshot(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


@pytest.mark.parametrize("damage", ["corrupt", "delete"])
def test_bad_file_mid_epoch_stops_and_resumes(tmp_path, capsys, monkeypatch, damage):
    root, out = tmp_path / "data", tmp_path / "run"
    make_folder(root)
    victim = root / "img" / "b1.png"                    # a train image; batch 8 > 4 images: every batch has it
    good = victim.read_bytes()
    state = {}
    real = train_mod.make_batch

    def damaging_make_batch(data, idx, device):
        # once epoch 1 is checkpointed, the file goes bad before the next training batch is decoded
        if (out / "last.json").exists() and not state:
            state["checkpoint"] = _snapshot(out)
            victim.unlink() if damage == "delete" else victim.write_bytes(b"\x89PNG truncated")
        return real(data, idx, device)

    monkeypatch.setattr(train_mod, "make_batch", damaging_make_batch)
    rc = main(_args(root, out))
    text = capsys.readouterr().err
    assert rc == 2 and state
    assert "b1.png" in text and "row 5" in text and "stopped at epoch 2, step 1" in text and "--resume" in text
    assert ("is missing" if damage == "delete" else "cannot decode") in text
    assert _snapshot(out) == state["checkpoint"]         # the checkpoint of epoch 1, untouched
    assert load_checkpoint(out).epoch == 0

    monkeypatch.setattr(train_mod, "make_batch", real)
    victim.write_bytes(good)
    assert main(_args(root, out, "--resume")) == 0
    resumed = load_checkpoint(out)
    assert resumed.epoch == 1
    assert main(_args(root, tmp_path / "straight")) == 0
    straight = load_checkpoint(tmp_path / "straight")
    for k, v in straight.model_state.items():
        assert torch.equal(resumed.model_state[k], v), k


def test_bad_file_before_any_checkpoint(tmp_path, capsys, monkeypatch):
    root, out = tmp_path / "data", tmp_path / "run"
    make_folder(root)
    real = train_mod.make_batch

    def damaging_make_batch(data, idx, device):
        (root / "img" / "a0.png").unlink(missing_ok=True)
        return real(data, idx, device)

    monkeypatch.setattr(train_mod, "make_batch", damaging_make_batch)
    assert main(_args(root, out)) == 2
    text = capsys.readouterr().err
    assert "a0.png is missing" in text and "no checkpoint was written" in text
    assert not (out / "last.json").exists()
