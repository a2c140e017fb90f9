"""Tests for teakit.checkpoint: bit-exact round trips, resumable optimizer/RNG,
crash safety, no pickle, and clear errors."""
from __future__ import annotations

import json
import os
import pickle
import random
import struct

import numpy as np
import pytest
import torch
import torch.nn as nn

from teakit.checkpoint import (
    Checkpoint,
    has_checkpoint,
    load_checkpoint,
    load_model_state,
    restore,
    save_checkpoint,
    sha256_state,
)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).relu().mean((2, 3)))


def _data(n=4):
    return torch.randn(n, 2, 6, 6), torch.randint(0, 4, (n,))


def _train_step(model, opt):
    x, y = _data()  # drawn from the global torch RNG: resuming must reproduce it
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def _params_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def _raw(t: torch.Tensor) -> bytes:
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _files(d):
    return sorted(os.listdir(d))


# --------------------------------------------------------------------------- #
def test_weights_round_trip_bit_identical(tmp_path):
    base = torch.randn(4, 6, dtype=torch.float64)
    state = {
        "f32": torch.randn(3, 5),
        "f64": base,
        "bf16": torch.randn(7).to(torch.bfloat16),
        "f16": torch.randn(2, 2).half(),
        "i64": torch.arange(5),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 3),
        "transposed": base.t(),              # non-contiguous view sharing base's storage
        "tied": base,                          # same tensor under two keys
        "slice": torch.arange(10.0)[2:6],      # view of part of a larger storage
        "nan_inf": torch.tensor([float("nan"), float("inf"), -0.0]),
    }
    save_checkpoint(tmp_path, model_state=state, config={"lr": 0.1, "tags": ["a"]}, epoch=7,
                    extra={"best": 0.5}, rng=False)
    ck = load_checkpoint(tmp_path)
    assert isinstance(ck, Checkpoint)
    assert ck.epoch == 7 and ck.config == {"lr": 0.1, "tags": ["a"]} and ck.extra == {"best": 0.5}
    assert ck.model_state.keys() == state.keys()
    for k, v in state.items():
        got = ck.model_state[k]
        assert got.dtype == v.dtype and got.shape == v.shape, k
        assert _raw(got) == _raw(v), k  # bit-identical, NaN and -0.0 included


def test_model_round_trip_and_load_model_state(tmp_path):
    torch.manual_seed(0)
    a, b = Net(), Net()
    save_checkpoint(tmp_path, model_state=a.state_dict(), config={}, epoch=0)
    load_model_state(b, load_checkpoint(tmp_path).model_state)
    assert _params_equal(a.state_dict(), b.state_dict())


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.8, 0.95)),
    lambda p: torch.optim.AdamW(p, lr=1e-2, amsgrad=True),
], ids=["sgd_momentum", "adam", "adamw_amsgrad"])
def test_optimizer_and_rng_resume_bit_identical(tmp_path, make_opt):
    torch.manual_seed(1)
    model = Net()
    opt = make_opt(model.parameters())
    for _ in range(3):
        _train_step(model, opt)
    save_checkpoint(tmp_path, model_state=model.state_dict(), optimizer=opt,
                    config={"opt": "x"}, epoch=3)
    for _ in range(2):  # uninterrupted run
        _train_step(model, opt)
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    torch.manual_seed(12345)  # a "new process": different RNG, fresh model and optimizer
    model2 = Net()
    opt2 = make_opt(model2.parameters())
    ck = load_checkpoint(tmp_path)
    load_model_state(model2, ck.model_state)
    restore(ck, optimizer=opt2)
    for _ in range(2):
        _train_step(model2, opt2)
    assert _params_equal(reference, model2.state_dict())
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


def test_rng_states_restored(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    np.random.randn(1)   # leaves a cached gaussian in numpy's legacy state
    random.gauss(0, 1)   # and in Python's (gauss_next)
    save_checkpoint(tmp_path, model_state={}, config={}, epoch=0)
    first = (torch.rand(5), np.random.randn(5), [random.gauss(0, 1) for _ in range(3)],
             [random.random() for _ in range(3)])
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    restore(load_checkpoint(tmp_path))
    again = (torch.rand(5), np.random.randn(5), [random.gauss(0, 1) for _ in range(3)],
             [random.random() for _ in range(3)])
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1])
    assert first[2] == again[2] and first[3] == again[3]


def _opt_state_equal(a: dict, b: dict) -> bool:
    sa, sb = a["state"], b["state"]
    return sa.keys() == sb.keys() and all(
        sa[i].keys() == sb[i].keys() and all(torch.equal(sa[i][k], sb[i][k]) for k in sa[i]) for i in sa)


@pytest.mark.parametrize("crash_at", [1, 2, 3])
def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch, crash_at):
    """os.replace number `crash_at` (1: weights, 2: state, 3: the JSON commit) fails."""
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _train_step(model, opt)
    save_checkpoint(tmp_path, model_state=model.state_dict(), optimizer=opt, config={"v": 1}, epoch=1)
    old_weights = {k: v.clone() for k, v in model.state_dict().items()}
    old_opt = load_checkpoint(tmp_path).optimizer_state
    old_files = _files(tmp_path)
    _train_step(model, opt)

    real_replace = os.replace
    calls = []

    def flaky_replace(src, dst):
        calls.append(str(dst))
        if len(calls) == crash_at:
            raise OSError("simulated crash")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(tmp_path, model_state=model.state_dict(), optimizer=opt, config={"v": 2}, epoch=2)
    monkeypatch.setattr(os, "replace", real_replace)
    if crash_at == 3:
        assert calls[-1].endswith("last.json")

    ck = load_checkpoint(tmp_path)
    assert ck.epoch == 1 and ck.config == {"v": 1}
    assert _params_equal(old_weights, ck.model_state)
    assert _opt_state_equal(old_opt, ck.optimizer_state)
    assert _files(tmp_path) == old_files  # the failed save cleaned up after itself

    # the next save succeeds and leaves exactly one generation
    save_checkpoint(tmp_path, model_state=model.state_dict(), optimizer=opt, config={"v": 3}, epoch=3)
    assert load_checkpoint(tmp_path).epoch == 3
    assert len(_files(tmp_path)) == 3


def test_hard_kill_orphans_are_ignored_then_removed(tmp_path):
    """A process killed before the JSON commit leaves orphans (and temp files), never a mix."""
    state1 = {"w": torch.ones(3)}
    save_checkpoint(tmp_path, model_state=state1, config={}, epoch=1)
    # what a kill -9 after writing the new weights (and mid-write of the JSON) leaves behind
    (tmp_path / "last.0123abcd.safetensors").write_bytes(b"half-written garbage")
    (tmp_path / ".last.0123abcd.state.safetensors.tmp").write_bytes(b"x")
    (tmp_path / ".last.json.tmp").write_text('{"epoch": 2, ')
    ck = load_checkpoint(tmp_path)
    assert ck.epoch == 1 and torch.equal(ck.model_state["w"], state1["w"])
    save_checkpoint(tmp_path, model_state={"w": torch.zeros(3)}, config={}, epoch=2)
    names = _files(tmp_path)
    assert "last.0123abcd.safetensors" not in names and ".last.0123abcd.state.safetensors.tmp" not in names
    assert len([n for n in names if n.endswith(".safetensors")]) == 2


def test_names_are_independent(tmp_path):
    save_checkpoint(tmp_path, model_state={"w": torch.ones(2)}, config={}, epoch=1, name="best")
    save_checkpoint(tmp_path, model_state={"w": torch.zeros(2)}, config={}, epoch=2)
    save_checkpoint(tmp_path, model_state={"w": torch.full((2,), 5.0)}, config={}, epoch=3)
    assert load_checkpoint(tmp_path, name="best").epoch == 1
    assert torch.equal(load_checkpoint(tmp_path, name="best").model_state["w"], torch.ones(2))
    assert load_checkpoint(tmp_path).epoch == 3
    assert has_checkpoint(tmp_path) and has_checkpoint(tmp_path, "best")
    assert not has_checkpoint(tmp_path, "other") and not has_checkpoint(tmp_path / "nope")


def test_no_pickle_anywhere(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle/torch.load/torch.save must not be used")

    for mod, attr in [(torch, "load"), (torch, "save"), (pickle, "load"), (pickle, "loads"),
                      (pickle, "dump"), (pickle, "dumps"), (pickle, "Unpickler"), (pickle, "Pickler")]:
        monkeypatch.setattr(mod, attr, forbidden)
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.Adam(model.parameters())
    _train_step(model, opt)
    save_checkpoint(tmp_path, model_state=model.state_dict(), optimizer=opt, config={}, epoch=1)
    ck = load_checkpoint(tmp_path)
    restore(ck, optimizer=torch.optim.Adam(Net().parameters()))

    record = json.loads((tmp_path / "last.json").read_text())  # plain JSON
    for fname in record["files"].values():
        data = (tmp_path / fname).read_bytes()
        assert not data.startswith(b"\x80") and not data.startswith(b"PK")  # not pickle, not zip
        (n,) = struct.unpack("<Q", data[:8])  # safetensors: u64 header length + JSON header
        header = json.loads(data[8:8 + n])
        assert header["__metadata__"]["format"] == "pt"


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="last.json"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path, model_state={"w": torch.ones(2)}, config={}, epoch=1)
    record = json.loads((tmp_path / "last.json").read_text())
    (tmp_path / record["files"]["state"]).unlink()
    with pytest.raises(FileNotFoundError, match=record["files"]["state"].replace(".", r"\.")):
        load_checkpoint(tmp_path)


def test_corrupt_files_are_named(tmp_path):
    save_checkpoint(tmp_path, model_state={"w": torch.ones(64)}, config={}, epoch=1)
    record = json.loads((tmp_path / "last.json").read_text())
    weights = tmp_path / record["files"]["model"]
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # flip bits in the tensor payload
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=record["files"]["model"].replace(".", r"\.")):
        load_checkpoint(tmp_path)

    (tmp_path / "last.json").write_text('{"epoch": 1, "config": ')
    with pytest.raises(ValueError, match=r"last\.json.*not valid JSON"):
        load_checkpoint(tmp_path)
    (tmp_path / "last.json").write_text('{"epoch": 1}')
    with pytest.raises(ValueError, match=r"last\.json.*not a teakit checkpoint"):
        load_checkpoint(tmp_path)


def test_key_mismatch_lists_keys():
    model = Net()
    state = dict(model.state_dict())
    del state["fc.bias"]
    state["head.weight"] = torch.zeros(1)
    state["conv.weight"] = torch.zeros(3, 2, 5, 5)
    with pytest.raises(ValueError) as err:
        load_model_state(model, state)
    msg = str(err.value)
    assert "missing keys 1: fc.bias" in msg
    assert "unexpected keys 1: head.weight" in msg
    assert "conv.weight (model (3, 2, 3, 3), checkpoint (3, 2, 5, 5))" in msg
    assert not torch.equal(model.state_dict()["conv.weight"], torch.zeros(3, 2, 3, 3))


def test_restore_refuses_missing_parts(tmp_path):
    save_checkpoint(tmp_path, model_state={"w": torch.ones(1)}, config={}, epoch=0, rng=False)
    ck = load_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="no optimizer state"):
        restore(ck, optimizer=torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1), rng=False)
    with pytest.raises(ValueError, match="no RNG state"):
        restore(ck)
    restore(ck, rng=False)  # nothing asked, nothing done


def test_non_json_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="plain JSON"):
        save_checkpoint(tmp_path, model_state={}, config={"t": torch.ones(1)}, epoch=0)
    assert not has_checkpoint(tmp_path)


def test_sha256_state_is_stable_and_sensitive():
    a = {"x": torch.arange(6.0), "y": torch.ones(2, dtype=torch.int64)}
    h = sha256_state(a)
    assert h == sha256_state({"y": a["y"].clone(), "x": a["x"].clone()})  # key order irrelevant
    assert h == sha256_state({"x": (torch.arange(12.0) / 2)[::2], "y": a["y"]})  # strided view
    assert len(h) == 64
    flipped = a["x"].clone()
    flipped[3] = torch.nextafter(flipped[3], torch.tensor(100.0))
    assert sha256_state({**a, "x": flipped}) != h                      # one ulp
    assert sha256_state({**a, "x": a["x"].reshape(2, 3)}) != h          # shape
    assert sha256_state({**a, "x": a["x"].double()}) != h               # dtype
    assert sha256_state({"x2": a["x"], "y": a["y"]}) != h                # key name
    t = a["x"].reshape(3, 2).t()
    assert sha256_state({**a, "x": t}) == sha256_state({**a, "x": t.contiguous()})
