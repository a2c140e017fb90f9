"""The one training loop, shared by every objective (Lightning Fabric).

    for epoch:                      # resumable: state is saved atomically each epoch
        for batch in this rank's shard of a seeded permutation:
            loss, logs = objective(batch, student, rng)      # rng seeded by (seed, epoch, step, rank)
            backward, clip, step
        validate on the biased validation set -> keep the best by objective.selection_key
        save last checkpoint (weights + optimizer + history)

Everything random in a step is drawn from a generator seeded by
(seed, epoch, step, rank), and the learning rate is a pure function of the
global step, so a run resumed from its last checkpoint ends bit-identical to an
uninterrupted one.  Data are :class:`teakit.data.ImageSet` s (in memory, or lazy: a file that went
bad since validation stops the run with its name, checkpoints untouched).
Nothing here knows which objective it runs.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from .checkpoint import (
    has_checkpoint,
    load_checkpoint,
    load_model_state,
    restore,
    save_checkpoint,
)
from .config import OPTIMIZERS, SCHEDULES, TrainConfig  # noqa: F401  (re-exported)
from .data.decode import DataError

DEFAULT_FABRIC = {"accelerator": "cpu", "devices": 1, "strategy": "auto", "precision": "32-true"}


def make_fabric(fabric_kw: dict | None = None):
    """A Lightning Fabric from ``accelerator``, ``devices``, ``strategy``, ``precision``."""
    try:
        from lightning_fabric import Fabric
        from lightning_fabric.strategies import DDPStrategy
    except ImportError:  # the unified `lightning` package ships the same Fabric
        from lightning.fabric import Fabric
        from lightning.fabric.strategies import DDPStrategy

    kw = dict(DEFAULT_FABRIC, **(fabric_kw or {}))
    # every objective's training loss reaches every trainable parameter: the supervised ones through
    # the logits, the heatmap-only ones (TEA: a heatmap never depends on the head's bias) through
    # objectives.base.touch_all_parameters; so DDP need not search the graph for unused ones each step
    starts = {"ddp": "popen", "ddp_spawn": "spawn", "ddp_fork": "fork", "ddp_notebook": "fork"}
    if kw["strategy"] in starts:
        kw["strategy"] = DDPStrategy(start_method=starts[kw["strategy"]], find_unused_parameters=False)
    return Fabric(**kw)


# Lightning precisions that keep float32 arithmetic
FULL_PRECISIONS = ("32-true", "32", 32, "64-true", "64", 64)


def check_precision(name: str, explains: bool, fabric_kw: dict | None) -> None:
    """Refuse a half or mixed precision for objective ``name`` if it trains on an explanation (``explains``,
    :class:`teakit.objectives.base.Objective`): under bf16 autocast an LRP-ε heatmap of a ResNet-18 differed from
    float32 by 25 % and the loss's gradient by 110 % (docs/engine.md), so the run would not train that objective."""
    precision = (fabric_kw or {}).get("precision", DEFAULT_FABRIC["precision"])
    if explains and precision not in FULL_PRECISIONS:
        raise ValueError(f"--precision {precision}: objective {name!r} trains on explanations, whose "
                         "second-order gradients half precision does not reproduce (docs/engine.md); use 32-true")


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer over ``model``'s trainable parameters; with ``cfg.head_lr_scale != 1``
    the head (:func:`teakit.models.get_head`) is its own group with ``lr_scale`` set."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.head_lr_scale != 1.0:
        from .models import get_head
        head = {id(p) for p in get_head(model).parameters()}
        params = [{"params": [p for p in params if id(p) not in head], "lr_scale": 1.0},
                  {"params": [p for p in params if id(p) in head], "lr_scale": cfg.head_lr_scale}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Learning rate at a global step: linear warm-up, then constant or cosine to 0."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    t = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def step_generator(seed: int, epoch: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 100_003 + step) * 1_009 + rank)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1):
    """This rank's batches of a seeded permutation; every rank gets the same number of
    equal-size batches (the tail that does not fill a batch on every rank is dropped)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
    per_step = batch_size * world
    steps = n // per_step if n >= per_step else 1
    batches = []
    for s in range(steps):
        chunk = perm[s * per_step:(s + 1) * per_step]
        batches.append(chunk[rank::world])
    return batches


def make_batch(data, idx: torch.Tensor, device) -> dict:
    return {"x": data.x[idx].to(device), "y": data.y[idx].to(device), "mask": data.mask[idx].to(device),
            "bias": data.bias[idx].to(device), "index": idx.to(device)}


def _batch_or_stop(data, idx: torch.Tensor, device, out: Path, epoch: int, step: int) -> dict:
    """``make_batch``; a file that went bad since validation (lazy data) stops the run
    with its name, before anything of this epoch is saved."""
    try:
        return make_batch(data, idx, device)
    except DataError as exc:
        kept = (f"the last checkpoint in {out} is intact: restore the file and rerun with --resume"
                if has_checkpoint(out) else f"no checkpoint was written to {out} yet")
        raise DataError(f"{exc}\nstopped at epoch {epoch + 1}, step {step + 1}; {kept}") from exc


class _Mean:
    """Running means of logged scalars, weighted by batch size; a key that some steps do not log is the
    mean over the steps that do."""

    def __init__(self):
        self.sums, self.counts = {}, {}

    def add(self, logs: dict, n: int):
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v) * n
            self.counts[k] = self.counts.get(k, 0) + n

    def result(self, fabric=None) -> dict:
        keys = set(self.sums)
        several = fabric is not None and fabric.world_size > 1
        if several:  # the union of every process's keys, so that the sums line up
            gathered = [None] * fabric.world_size
            torch.distributed.all_gather_object(gathered, sorted(keys))
            keys = set().union(*gathered)
        keys = sorted(keys)
        t = torch.tensor([[self.sums.get(k, 0.0), float(self.counts.get(k, 0))] for k in keys],
                         dtype=torch.float64).view(-1, 2)
        if several:
            t = fabric.all_reduce(t, reduce_op="sum")
        return {k: (t[i, 0] / max(t[i, 1], 1)).item() for i, k in enumerate(keys)}


class _EMA:
    """Exponential moving average of a model's weights (buffers are copied as they are)."""

    PREFIX = "ema."

    def __init__(self, model, decay: float):
        self.decay = decay
        self.avg = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model):
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.avg[k].lerp_(v.detach(), 1.0 - self.decay)
            else:
                self.avg[k].copy_(v)

    def state(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in self.avg.items()}

    def load(self, state: dict) -> dict:
        """Take the averaged weights out of a saved 'last' state; return the model's own."""
        own = {k: v for k, v in state.items() if not k.startswith(self.PREFIX)}
        avg = {k[len(self.PREFIX):]: v for k, v in state.items() if k.startswith(self.PREFIX)}
        if avg.keys() != own.keys():
            raise ValueError("the checkpoint was written without --ema (or with other weights); "
                             "resume with the same settings")
        self.avg = {k: v.to(self.avg[k].device).clone() for k, v in avg.items()}
        return own

    class _Swap:
        def __init__(self, ema, model):
            self.ema, self.model = ema, model

        def __enter__(self):
            self.saved = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(self.ema.avg)

        def __exit__(self, *exc):
            self.model.load_state_dict(self.saved)

    def swapped_in(self, model):
        """Context: the model holds the averaged weights inside, its own weights after."""
        return self._Swap(self, model)


def validate(fabric, objective, student, data, cfg: TrainConfig) -> dict:
    """Objective's logs on the biased validation set, with fixed draws (same every epoch).

    Runs on the unwrapped module: a DDP wrapper would wait for a backward that never comes."""
    student = getattr(student, "module", student)
    student.eval()
    meter = _Mean()
    n = len(data)
    idx_all = torch.arange(fabric.global_rank, n, fabric.world_size)
    for s, start in enumerate(range(0, len(idx_all), cfg.val_batch_size)):
        idx = idx_all[start:start + cfg.val_batch_size]
        batch = make_batch(data, idx, fabric.device)
        _, logs = objective(batch, student, step_generator(cfg.seed, -1, s, fabric.global_rank), train=False)
        meter.add(logs, len(idx))
    student.train()
    return meter.result(fabric)


def _fmt(logs: dict) -> str:
    order = ["loss", "heatmap_loss", "acc", "agreement", "kl"]
    keys = [k for k in order if k in logs] + sorted(k for k in logs if k not in order)
    return " ".join(f"{k}={logs[k]:.4f}" for k in keys)


def fit(fabric, student, objective, train_data, val_data, cfg: TrainConfig, out_dir, *,
        run_config: dict | None = None, resume: bool = False, progress: bool = True,
        on_epoch=None) -> dict:
    """Train ``student`` with ``objective``; checkpoints and history go to ``out_dir``.

    ``on_epoch(record, model)``, if given, is called on rank 0 after every epoch
    (after its checkpoint is written) with the epoch's history record and the
    unwrapped student in eval mode — for probes such as the convergence study;
    it must not change the model.  Returns the history (a list of per-epoch
    dicts) and the best epoch.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    raw_student = student.to(memory_format=objective.memory_format)  # the same values, the layout it trains in
    optimizer = make_optimizer(student, cfg)
    start_epoch, best, best_epoch, history = 0, math.inf, -1, []
    ema = _EMA(raw_student, cfg.ema) if cfg.ema else None
    if resume and has_checkpoint(out):
        ck = load_checkpoint(out)
        state = ck.model_state
        if ema is not None:
            state = ema.load(state)
        load_model_state(raw_student, state)
        restore(ck, optimizer=optimizer, rng=True)
        start_epoch = ck.epoch + 1
        best, best_epoch = ck.extra["best"], ck.extra["best_epoch"]
        history = ck.extra["history"]
        fabric.print(f"resuming {out} after epoch {ck.epoch}")
    elif resume:
        fabric.print(f"--resume: no checkpoint in {out} yet, starting from scratch")
    trainable = [p for p in student.parameters() if p.requires_grad]
    student, optimizer = fabric.setup(student, optimizer)
    run_config = dict(run_config or {}, train=asdict(cfg), objective=objective.config())
    steps_per_epoch = len(epoch_batches(len(train_data), cfg.batch_size, cfg.seed, 0,
                                        fabric.global_rank, fabric.world_size))
    total_steps = steps_per_epoch * cfg.epochs
    key = objective.selection_key
    student.train()
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        meter = _Mean()
        objective.before_epoch(epoch, cfg.epochs)
        batches = epoch_batches(len(train_data), cfg.batch_size, cfg.seed, epoch,
                                fabric.global_rank, fabric.world_size)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, file=sys.stderr,
                   disable=not progress or fabric.global_rank != 0, dynamic_ncols=True)
        for step, idx in enumerate(bar):
            gstep = epoch * steps_per_epoch + step
            for group in optimizer.param_groups:
                group["lr"] = lr_at(gstep, total_steps, cfg) * group.get("lr_scale", 1.0)
            batch = _batch_or_stop(train_data, idx, fabric.device, out, epoch, step)
            loss, logs = objective(batch, student, step_generator(cfg.seed, epoch, step, fabric.global_rank))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}, step {step}; "
                                         f"the last good checkpoint is in {out}")
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss, inputs=trainable)  # no gradient for the input images
            if cfg.grad_clip:
                fabric.clip_gradients(student, optimizer, max_norm=cfg.grad_clip, error_if_nonfinite=False)
            optimizer.step()
            if ema is not None:
                ema.update(raw_student)
            meter.add(logs, len(idx))
            bar.set_postfix({k: f"{float(v):.3f}" for k, v in logs.items() if k in ("loss", "acc", "agreement")})
        train_logs = meter.result(fabric)
        train_logs.update(objective.after_epoch(raw_student, train_data, fabric.device))
        if ema is not None:  # the averaged weights get the same treatment, kept in the average
            with ema.swapped_in(raw_student):
                objective.after_epoch(raw_student, train_data, fabric.device)
                ema.avg = {k: v.detach().clone() for k, v in raw_student.state_dict().items()}
        if ema is not None:
            with ema.swapped_in(raw_student):
                val_logs = validate(fabric, objective, student, val_data, cfg)
        else:
            val_logs = validate(fabric, objective, student, val_data, cfg)
        record = {"epoch": epoch, "step": (epoch + 1) * steps_per_epoch, "seconds": time.perf_counter() - t0,
                  "train": train_logs, "val": val_logs}
        history.append(record)
        improved = val_logs[key] < best
        if improved:
            best, best_epoch = val_logs[key], epoch
        fabric.print(f"epoch {epoch + 1:3d}/{cfg.epochs} {record['seconds']:5.1f}s | train {_fmt(train_logs)}"
                     f" | val {_fmt(val_logs)}{'  *' if improved else ''}")
        if fabric.global_rank == 0:
            state = {k: v.detach().cpu() for k, v in raw_student.state_dict().items()}
            extra = {"best": best, "best_epoch": best_epoch, "history": history}
            if improved:
                best_state = ema.state() if ema is not None else state
                save_checkpoint(out, model_state=best_state, config=run_config, epoch=epoch, extra=extra,
                                rng=False, name="best")
            if ema is not None:
                state = {**state, **{_EMA.PREFIX + k: v for k, v in ema.state().items()}}
            save_checkpoint(out, model_state=state, optimizer=optimizer, config=run_config, epoch=epoch,
                            extra=extra, name="last")
            if on_epoch is not None:
                raw_student.eval()
                on_epoch(record, raw_student)
                raw_student.train()
        fabric.barrier()
    return {"history": history, "best_epoch": best_epoch, "best": best}


def fit_model(model, objective, train_data, val_data, out_dir, cfg: TrainConfig | None = None, *,
              fabric: dict | None = None, resume: bool = False, progress: bool = True, on_epoch=None) -> dict:
    """:func:`fit` in one call: a Lightning Fabric from ``fabric`` (``accelerator``, ``devices``,
    ``strategy``, ``precision``; default one CPU process), seeded with ``cfg.seed``, runs the loop.

    ``model``, ``objective`` (any :class:`~teakit.objectives.base.Objective`, e.g.
    :class:`~teakit.objectives.tea.TEA`), ``train_data`` and ``val_data``
    (:class:`~teakit.data.ImageSet`) are the caller's; ``cfg`` defaults to `tea train`'s
    (:class:`~teakit.config.TrainConfig`; :func:`teakit.config.distill_config` gives `tea distill`'s).
    Checkpoints go to ``out_dir`` (``best`` by ``objective.selection_key`` on ``val_data``, and ``last``);
    ``model`` ends with its last weights.  Returns ``{"history", "best_epoch", "best"}``."""
    cfg = cfg or TrainConfig()
    check_precision(getattr(objective, "name", type(objective).__name__), getattr(objective, "explains", False),
                    fabric)

    def main(fab):
        fab.seed_everything(cfg.seed, verbose=False)
        return fit(fab, model, objective, train_data, val_data, cfg, out_dir, resume=resume, progress=progress,
                   on_epoch=on_epoch)
    return make_fabric(fabric).launch(main)
