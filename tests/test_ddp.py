"""DDP with 2 CPU processes (gloo) makes the same TEA update as one process on the
combined batch: the student's heatmap goes through the DDP-wrapped model, and
the outer backward synchronises the gradients."""
import torch

from teakit.commands import load_data, make_fabric
from teakit.models import SmallCNN
from teakit.objectives.tea import TEA
from teakit.teachers import DebiasedTeacher
from teakit.train import TrainConfig, fit


def _run(fabric, out, batch_size):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    teacher = DebiasedTeacher(SmallCNN(width=4, depth=2)).freeze()
    torch.manual_seed(1)
    student = SmallCNN(width=4, depth=2, batchnorm=False)  # BN statistics would differ per shard
    data = load_data("colored-digits", limit=16)
    objective = TEA(teacher, 10, classes="top", eps_log_range=(-1.5, -1.5), feature_weight=0.0)
    # SGD: the update is linear in the gradient (Adam's first step is ~sign(g), which
    # would blow float rounding of near-zero gradients up to ±lr)
    cfg = TrainConfig(epochs=1, batch_size=batch_size, optimizer="sgd", momentum=0.0, lr=0.5,
                      schedule="constant", grad_clip=0.0, seed=0)
    fit(fabric, student, objective, data["train"], data["val"], cfg, out, progress=False)
    # logged means over the processes when only some of them logged a key
    from teakit.train import _Mean
    meter = _Mean()
    meter.add({"loss": 1.0 + fabric.global_rank, **({"only0": 4.0} if fabric.global_rank == 0 else {})}, 2)
    want = {"loss": 1.0 + (fabric.world_size - 1) / 2, "only0": 4.0}
    got = meter.result(fabric)
    assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-12 for k in want), got


def _final(out):
    from teakit.checkpoint import load_checkpoint
    return load_checkpoint(out).model_state


def test_ddp_two_processes_equals_one_process_on_the_combined_batch(tmp_path):
    make_fabric({"devices": 1}).launch(_run, tmp_path / "one", 16)
    make_fabric({"devices": 2, "strategy": "ddp_spawn"}).launch(_run, tmp_path / "two", 8)
    a, b = _final(tmp_path / "one"), _final(tmp_path / "two")
    torch.manual_seed(1)
    init = SmallCNN(width=4, depth=2, batchnorm=False).state_dict()
    moved = 0.0
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-5), k
        moved = max(moved, (a[k] - init[k]).abs().max().item())
    assert moved > 1e-3  # the step really changed the weights


def test_ddp_does_not_search_for_unused_parameters():
    """Every objective's loss reaches every trainable parameter (TEA via touch_all_parameters), so DDP
    is built with find_unused_parameters=False: no extra graph traversal per step."""
    strategy = make_fabric({"devices": 2, "strategy": "ddp_spawn"}).strategy
    assert strategy._ddp_kwargs["find_unused_parameters"] is False
