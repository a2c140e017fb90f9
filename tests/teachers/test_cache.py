"""Tests for teakit.teachers.cache: exact read-back, sharded builds, and refusal
of mismatched or incomplete caches."""
from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch

from teakit.teachers.cache import HeatmapCache, build_cache, eps_grid, finalize_cache

N, C, H, W, K = 7, 2, 5, 4, 3
EPS = eps_grid(3)
META = {"teacher_hash": "abc123", "dataset_fingerprint": "ds-v1"}


def fake_heatmap(x, target, eps):
    """Deterministic, per-sample, depends on all three inputs; within float16 range."""
    assert target.dtype == torch.int64 and eps.dtype == torch.float32
    assert target.shape == eps.shape == x.shape[:1]
    t = target.to(x.dtype).view(-1, 1, 1, 1)
    e = eps.view(-1, 1, 1, 1)
    return torch.sin(x * (t + 1)) * (1 + 10 * e) + t * 0.25 + x * e


@pytest.fixture(scope="module")
def images():
    return torch.randn(N, C, H, W, generator=torch.Generator().manual_seed(0))


def _expected(images):
    return {**META, "eps_values": EPS, "shape": [N, K, len(EPS), C, H, W], "num_classes": K}


def _build(path, images, **kw):
    kw.setdefault("progress", False)
    return build_cache(path, fake_heatmap, images, K, EPS, META, **kw)


def _all_triples():
    g = torch.cartesian_prod(torch.arange(N), torch.arange(K), torch.arange(len(EPS)))
    return g[:, 0], g[:, 1], g[:, 2]


# --------------------------------------------------------------------------- #
def test_eps_grid():
    g = eps_grid()
    assert len(g) == 4 and all(isinstance(v, float) for v in g)
    assert g[0] == 1e-2 and g[-1] == 1e-1
    ratios = [g[i + 1] / g[i] for i in range(3)]
    assert all(math.isclose(r, ratios[0]) for r in ratios)
    assert eps_grid(1, 0.05, 0.2) == [0.05]
    with pytest.raises(ValueError):
        eps_grid(0)
    with pytest.raises(ValueError):
        eps_grid(3, 0.0, 1.0)


def test_get_matches_direct_call(tmp_path, images):
    _build(tmp_path, images, batch_size=4)  # 4 does not divide N*K*E = 63
    cache = HeatmapCache.open(tmp_path, _expected(images))
    assert len(cache) == N and cache.shape == (N, K, len(EPS), C, H, W)
    assert torch.allclose(cache.eps_values, torch.tensor(EPS, dtype=torch.float32))

    idx, cls, e = _all_triples()
    got = cache.get(idx, cls, e)
    direct = fake_heatmap(images[idx], cls, cache.eps_values[e])
    assert got.dtype == torch.float32 and got.shape == (len(idx), C, H, W)
    assert torch.equal(got, direct.half().float())  # exactly the float16 rounding
    torch.testing.assert_close(got, direct, rtol=1e-3, atol=1e-3)

    gen = torch.Generator().manual_seed(1)
    for _ in range(3):  # random triples, with repeats
        b = 9
        i = torch.randint(0, N, (b,), generator=gen)
        k = torch.randint(0, K, (b,), generator=gen)
        j = torch.randint(0, len(EPS), (b,), generator=gen)
        want = fake_heatmap(images[i], k, cache.eps_values[j])
        torch.testing.assert_close(cache.get(i, k, j), want, rtol=1e-3, atol=1e-3)
        assert not torch.equal(cache.get(i, (k + 1) % K, j), cache.get(i, k, j))


def test_manifest_contents(tmp_path, images):
    _build(tmp_path, images)
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["complete"] is True and m["dtype"] == "float16"
    assert m["shape"] == [N, K, len(EPS), C, H, W] and m["eps_values"] == EPS
    assert m["teacher_hash"] == "abc123" and m["dataset_fingerprint"] == "ds-v1"
    assert isinstance(m["version"], int)
    assert (tmp_path / "heatmaps.f16").stat().st_size == N * K * len(EPS) * C * H * W * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heatmaps.f16", "manifest.json"]


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_sharded_build_equals_single(tmp_path, images, order):
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    _build(single, images, batch_size=5)
    for r in order:
        _build(sharded, images, batch_size=3, rank=r, world_size=2)
    with pytest.raises(ValueError, match="incomplete"):  # not finalized yet
        HeatmapCache.open(sharded, _expected(images))
    finalize_cache(sharded, world_size=2)
    assert (single / "heatmaps.f16").read_bytes() == (sharded / "heatmaps.f16").read_bytes()
    a = HeatmapCache.open(single, _expected(images))
    b = HeatmapCache.open(sharded, _expected(images))
    assert torch.equal(a.get(*_all_triples()), b.get(*_all_triples()))
    assert finalize_cache(sharded, world_size=2)["complete"] is True  # idempotent


def test_finalize_refuses_missing_rank(tmp_path, images):
    _build(tmp_path, images, rank=0, world_size=3)
    _build(tmp_path, images, rank=2, world_size=3)
    with pytest.raises(ValueError, match=r"ranks \[1\] have not finished"):
        finalize_cache(tmp_path, world_size=3)
    with pytest.raises(ValueError, match="incomplete"):
        HeatmapCache.open(tmp_path, {})


@pytest.mark.parametrize("field, wrong", [
    ("teacher_hash", "other-teacher"),
    ("dataset_fingerprint", "ds-v2"),
    ("eps_values", eps_grid(4)),
    ("eps_values", [v * 1.001 for v in EPS]),
    ("shape", [N + 1, K, len(EPS), C, H, W]),
    ("num_classes", K + 1),
    ("augmentation", "flip"),  # a field the cache does not have at all
])
def test_mismatch_is_refused_naming_the_field(tmp_path, images, field, wrong):
    _build(tmp_path, images)
    expected = {**_expected(images), field: wrong}
    with pytest.raises(ValueError) as err:
        HeatmapCache.open(tmp_path, expected)
    msg = str(err.value)
    assert f"field '{field}'" in msg and repr(wrong) in msg and "build_cache" in msg
    if field in META:
        assert repr(META[field]) in msg  # the found value too


def test_expected_accepts_tensors_and_tuples(tmp_path, images):
    _build(tmp_path, images)
    exp = {**META, "eps_values": torch.tensor(EPS, dtype=torch.float64),
           "shape": torch.Size([N, K, len(EPS), C, H, W])}
    HeatmapCache.open(tmp_path, exp)


def test_incomplete_cache_is_refused(tmp_path, images):
    _build(tmp_path, images)
    mpath = tmp_path / "manifest.json"
    m = json.loads(mpath.read_text())
    del m["complete"]
    mpath.write_text(json.dumps(m))
    with pytest.raises(ValueError, match="incomplete"):
        HeatmapCache.open(tmp_path, _expected(images))
    m["complete"] = False
    mpath.write_text(json.dumps(m))
    with pytest.raises(ValueError, match="incomplete"):
        HeatmapCache.open(tmp_path, _expected(images))


def test_interrupted_rebuild_is_refused(tmp_path, images):
    _build(tmp_path, images)
    calls = []

    def dies(x, target, eps):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return fake_heatmap(x, target, eps) * 2

    with pytest.raises(KeyboardInterrupt):
        build_cache(tmp_path, dies, images, K, EPS, META, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="incomplete"):  # half old, half new: never served
        HeatmapCache.open(tmp_path, _expected(images))


def test_missing_and_corrupt_files_are_named(tmp_path, images):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        HeatmapCache.open(tmp_path / "nope", {})
    _build(tmp_path, images)
    data = tmp_path / "heatmaps.f16"
    data.write_bytes(data.read_bytes()[:-2])
    with pytest.raises(ValueError, match=r"heatmaps\.f16"):
        HeatmapCache.open(tmp_path, {})
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"manifest\.json.*not valid JSON"):
        HeatmapCache.open(tmp_path, {})


def test_bad_heatmaps_are_refused(tmp_path, images):
    with pytest.raises(ValueError, match="shape"):
        build_cache(tmp_path, lambda x, t, e: x.sum(1), images, K, EPS, META, progress=False)
    with pytest.raises(ValueError, match="float16 range"):
        build_cache(tmp_path, lambda x, t, e: x * 1e6, images, K, EPS, META, progress=False)
    with pytest.raises(ValueError, match="reserved"):
        build_cache(tmp_path, fake_heatmap, images, K, EPS, {"shape": [1]}, progress=False)


def test_get_validates_indices(tmp_path, images):
    _build(tmp_path, images)
    cache = HeatmapCache.open(tmp_path, {})
    one = torch.tensor([0])
    with pytest.raises(IndexError, match="indices"):
        cache.get(torch.tensor([N]), one, one)
    with pytest.raises(IndexError, match="classes"):
        cache.get(one, torch.tensor([K]), one)
    with pytest.raises(IndexError, match="eps_index"):
        cache.get(one, one, torch.tensor([-1]))
    with pytest.raises(ValueError, match="same length"):
        cache.get(torch.tensor([0, 1]), one, one)
    assert cache.get(one[:0], one[:0], one[:0]).shape == (0, C, H, W)


def test_cache_pickles_without_its_data(tmp_path, images):
    """DataLoader workers receive the cache by pickling: only the path travels."""
    _build(tmp_path, images)
    cache = HeatmapCache.open(tmp_path, {})
    idx, cls, e = _all_triples()
    before = cache.get(idx, cls, e)
    blob = pickle.dumps(cache)
    assert len(blob) < (tmp_path / "heatmaps.f16").stat().st_size
    assert torch.equal(pickle.loads(blob).get(idx, cls, e), before)


def test_memmap_is_read_only(tmp_path, images):
    _build(tmp_path, images)
    cache = HeatmapCache.open(tmp_path, {})
    cache.get(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]))
    with pytest.raises(ValueError):
        cache._map()[0, 0, 0, 0, 0, 0] = np.float16(1)
