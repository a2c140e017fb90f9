"""`tea bench step-cost`: the price of one TEA step against one ERM step.

Same student (torchvision ResNet-18, 10 classes), same batch (32×3×64×64 random
data), one process.  Variants, each a full optimisation step (zero_grad,
forward, loss, backward, SGD step):

* ``erm``: cross-entropy on the logits;
* ``tea_live``: teacher (ResNet-34, eval, frozen) LRP-ε heatmap without graph, the
  class picked from the logits of the map's own forward pass (one teacher forward, as
  `tea distill` does: :func:`teakit.objectives.teacher_maps.live_maps`),
  student LRP-ε heatmap with graph, the TEA loss, backward;
* ``tea_cached``: the same with the teacher heatmap given (as read from a cache);
* ``tea_live_features``: ``tea_live`` plus the relevance of the second-to-last
  ReLU layer for teacher and student and its loss, as `tea distill` runs by
  default (``teakit.config.TEAConfig.feature_layer``; one backward pass gives both maps);
* ``tea_hidden_only``: the steps between input maps with ``input_map_every`` above 1: the
  second-to-last ReLU layer's relevance alone, both LRP passes stopped at that layer;
* ``feature_distill``: the teacher's forward pass (no graph), then the student's forward and backward with
  the mean squared distance between the two networks' pooled pre-head features (the arithmetic of
  feature distillation's step);
* ``tea_all_cached``: cached maps for all K = 10 classes of every image at once
  (the batch replicated K times: one vectorised pass);
* ``tea_all_sequential``: the same loss as K sequential passes, one class at a
  time (gradients accumulated), the naive way it is measured against.

`tea bench distill-step` (:func:`distill_step_cost`) times the real thing instead: `tea distill`'s
objectives (TEA at its defaults, feature distillation, KD, …) on a built-in benchmark's training batches,
with a teacher folder's teacher and `tea distill`'s student, each a full training step as
:func:`teakit.train.fit` runs it (the objective, the backward pass, gradient clipping, the optimizer
step), interleaved the same way.  A segmenter teacher's masks of those batches are computed before the
timing, as after a run's first epoch.  The per-epoch work (TEA's head-bias calibration, validation) is not
counted.  Each step's ratio to feature distillation's is the step half of issue #22's time bound; the
other half is the number of steps each needs (`tea study convergence --baselines`).

Per-sample ε and the class choice are TEA's (:mod:`teakit.objectives.sampling`).  After a warm-up the
variants run interleaved (A B C, A B C, …) and ratios are medians of the
per-round ratios, which is robust to a shared, noisy machine.  ``accelerator``
``"cuda"`` runs it all on the GPU (each timing synchronises the device); next to
each variant's seconds per step the table gives images per second and the peak
memory of one step (the GPU's allocator peak on CUDA, the process's peak
resident memory growth on CPU, which only ever rises, so it is reported once).
Both models and the batch are in the channels-last layout, the one `tea` builds its
models in and trains TEA and ERM students in (:func:`teakit.models.build_model`), so
the ratios are those of a `tea` run; ``channels_last=False`` keeps PyTorch's own layout.
"""
from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from .config import TEAConfig
from .explain import explain
from .objectives.heatmap_loss import heatmap_loss
from .objectives.sampling import sample_classes, sample_eps
from .objectives.teacher_maps import live_maps
from .teachers import DebiasedTeacher


def _device(accelerator: str) -> torch.device:
    if accelerator in ("cuda", "gpu"):
        if not torch.cuda.is_available():
            raise ValueError(f"tea bench: --accelerator {accelerator} asked for, but torch sees no CUDA device")
        return torch.device("cuda")
    if accelerator != "cpu":
        raise ValueError(f"tea bench: --accelerator must be cpu, cuda or gpu, not {accelerator!r}")
    return torch.device("cpu")


def _time(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _peak_memory_mb(fn, device: torch.device) -> float:
    """Peak memory of one call of ``fn`` in MiB: the CUDA allocator's peak above what was allocated
    before; on CPU the process's peak resident set so far (``ru_maxrss``, which every variant has
    already reached in the timing rounds, so ``fn`` is not run again)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def _interleaved(variants: dict, rounds: int, warmup: int, device: torch.device) -> dict:
    """``{name: [seconds of round 0, 1, ...]}``: ``warmup`` untimed calls of every ``variants[name](r)``
    (r = -1, -2, ...), then ``rounds`` timed rounds, each calling every variant once in turn with the
    round's index."""
    for r in range(warmup):
        for fn in variants.values():
            fn(-1 - r)
    times = {k: [] for k in variants}
    for r in range(rounds):
        for k, fn in variants.items():
            times[k].append(_time(lambda: fn(r), device))
    return times


def step_cost(batch: int = 32, size: int = 64, rounds: int = 7, warmup: int = 2,
              seed: int = 0, accelerator: str = "cpu", channels_last: bool = True) -> dict:
    """Seconds per step of ERM and of TEA's steps, their ratios, images per second and peak memory (module
    docstring)."""
    device = _device(accelerator)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(seed)
    num_classes = 10
    student = torchvision.models.resnet18(num_classes=num_classes).train().to(device, memory_format=layout)
    teacher = torchvision.models.resnet34(num_classes=num_classes).eval().requires_grad_(False)
    teacher = teacher.to(device, memory_format=layout)
    opt = torch.optim.SGD(student.parameters(), lr=1e-3, momentum=0.9)
    params = list(student.parameters())
    x = torch.rand(batch, 3, size, size).to(device).contiguous(memory_format=layout)
    y = torch.randint(0, num_classes, (batch,)).to(device)
    gen = torch.Generator().manual_seed(seed)

    live_teacher = DebiasedTeacher(teacher).freeze()

    def teacher_maps(feature_layer=None, input_map=True):
        """(the teacher's map, or (map, hidden-layer map) with ``feature_layer``; the map is None without
        ``input_map``), classes, ε: as `tea distill` computes them (:func:`live_maps`: the classes picked
        from the map's own forward pass)."""
        eps = sample_eps(batch, gen, device=device)
        t = live_maps(live_teacher, x, eps, lambda logits: sample_classes(logits.argmax(1), num_classes,
                                                                          generator=gen), 1, gen,
                      feature_layer=feature_layer, input_map=input_map)
        return (t.maps if feature_layer is None else (t.maps, t.hidden)), t.target, t.eps

    cached_T, cached_target, cached_eps = teacher_maps()

    def erm():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(student(x), y).backward()
        opt.step()

    def tea(T, target, eps):
        opt.zero_grad(set_to_none=True)
        S = explain(student, x, target, eps=eps, create_graph=True)
        heatmap_loss(S, T).backward(inputs=params)  # no gradient for the input image
        opt.step()

    def tea_live():
        T, target, eps = teacher_maps()
        tea(T, target, eps)

    def tea_cached():
        tea(cached_T, cached_target, cached_eps)

    def tea_live_features():
        (T, T_f), target, eps = teacher_maps(TEAConfig.feature_layer)
        opt.zero_grad(set_to_none=True)
        S, S_f = explain(student, x, target, eps=eps, create_graph=True, feature_layer=TEAConfig.feature_layer)
        (heatmap_loss(S, T) + heatmap_loss(S_f, T_f, pyramid=False)).backward(inputs=params)
        opt.step()

    def tea_hidden_only():
        layer = TEAConfig.feature_layer
        (_, T_f), target, eps = teacher_maps(layer, input_map=False)
        opt.zero_grad(set_to_none=True)
        _, S_f = explain(student, x, target, eps=eps, create_graph=True, feature_layer=layer, input_map=False)
        heatmap_loss(S_f, T_f, pyramid=False).backward(inputs=params)
        opt.step()

    student_trunk, teacher_trunk = torch.nn.Sequential(*list(student.children())[:-1]), \
        torch.nn.Sequential(*list(teacher.children())[:-1])

    def feature_distill():
        with torch.no_grad():
            target_features = teacher_trunk(x).flatten(1)
        opt.zero_grad(set_to_none=True)
        F.mse_loss(student_trunk(x).flatten(1), target_features).backward()
        opt.step()

    all_target = torch.arange(num_classes, device=device).repeat_interleave(batch)
    all_eps = cached_eps.repeat(num_classes)
    all_T = explain(teacher, x.repeat(num_classes, 1, 1, 1), all_target, eps=all_eps)

    def tea_all_cached():
        opt.zero_grad(set_to_none=True)
        S = explain(student, x.repeat(num_classes, 1, 1, 1), all_target, eps=all_eps, create_graph=True)
        heatmap_loss(S, all_T).backward(inputs=params)
        opt.step()

    def tea_all_sequential():
        opt.zero_grad(set_to_none=True)
        for k in range(num_classes):
            rows = slice(k * batch, (k + 1) * batch)
            S = explain(student, x, all_target[rows], eps=all_eps[rows], create_graph=True)
            (heatmap_loss(S, all_T[rows]) / num_classes).backward(inputs=params)
        opt.step()

    variants = {"erm": erm, "feature_distill": feature_distill, "tea_live": tea_live, "tea_cached": tea_cached,
                "tea_live_features": tea_live_features, "tea_hidden_only": tea_hidden_only,
                "tea_all_cached": tea_all_cached, "tea_all_sequential": tea_all_sequential}
    times = _interleaved({k: (lambda _, fn=fn: fn()) for k, fn in variants.items()}, rounds, warmup, device)
    ratio = lambda k: statistics.median(a / b for a, b in zip(times[k], times["erm"]))  # noqa: E731
    peak = {k: _peak_memory_mb(fn, device) for k, fn in variants.items()}
    return {
        **{f"{k}_images_per_s": batch / statistics.median(times[k]) for k in variants},
        **{f"{k}_peak_mb": peak[k] for k in variants},
        **{f"{k}_step_s": statistics.median(times[k]) for k in variants},
        **{f"{k}_over_erm": ratio(k) for k in variants if k != "erm"},
        # TEA's default step, and its mean step with input maps on one step in two, over feature distillation's
        "tea_live_features_over_feature_distill": statistics.median(
            a / b for a, b in zip(times["tea_live_features"], times["feature_distill"])),
        "tea_input_maps_every_2_over_feature_distill": statistics.median(
            (a + h) / 2 / b for a, h, b in zip(times["tea_live_features"], times["tea_hidden_only"],
                                               times["feature_distill"])),
        "variants": list(variants),
        "num_classes": num_classes,
        "batch": [batch, 3, size, size],
        "rounds": rounds,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "channels_last": channels_last,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    }


def print_table(result: dict) -> None:
    cpu = result["device"] == "cpu"
    layout = ", channels-last" if result.get("channels_last") else ""
    print(f"step cost on {result['device']}, batch {tuple(result['batch'])}{layout}, torch "
          f"{result['torch_version']}, {result['threads']} threads, median of {result['rounds']} interleaved rounds")
    memory = "" if cpu else f"{'peak MiB':>10}"
    print(f"{'variant':<20}{'s/step':>10}{'× ERM':>10}{'images/s':>10}{memory}")
    for k in result["variants"]:
        over = 1.0 if k == "erm" else result[k + "_over_erm"]
        memory = "" if cpu else f"{result[k + '_peak_mb']:>10.0f}"
        print(f"{k:<20}{result[k + '_step_s']:>10.4f}{over:>10.2f}{result[k + '_images_per_s']:>10.0f}{memory}")
    print(f"TEA's step over feature distillation's: {result['tea_live_features_over_feature_distill']:.2f}; "
          f"with input maps on one step in two: {result['tea_input_maps_every_2_over_feature_distill']:.2f}")
    if cpu:
        print(f"peak resident memory of the process: {max(v for k, v in result.items() if k.endswith('_peak_mb')):.0f} MiB")


def run_step_cost(json_path: str | None = None, **kw) -> dict:
    result = step_cost(**kw)
    print_table(result)
    _write_json(result, json_path)
    return result


def _write_json(result: dict, json_path: str | None) -> None:
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {json_path}")


def distill_step_cost(dataset: str, teacher_dir, objectives=("tea", "feature", "kd"), *, spec: dict | None = None,
                      batch: int | None = None, rounds: int = 7, warmup: int = 2, seed: int = 0,
                      data_seed: int = 0, accelerator: str = "cpu") -> dict:
    """Seconds per `tea distill` training step of each of ``objectives`` on ``dataset``'s training batches,
    with the teacher of ``teacher_dir`` and `tea distill`'s student (``spec``; default the default CNN), and
    each one's median per-round ratio to feature distillation's step (module docstring).  ``batch``:
    images per step (default `tea distill`'s batch size)."""
    from .commands import _resolve_spec, distill_student
    from .config import distill_config
    from .data.load import load_data
    from .objectives.registry import OBJECTIVES, build_objective, distill_objectives
    from .runs import load_teacher
    from .train import make_batch, make_optimizer, step_generator

    objectives = list(dict.fromkeys(objectives))
    for name in objectives:
        if name not in distill_objectives():
            raise ValueError(f"tea bench distill-step: unknown objective {name!r}; expected `tea distill`'s: "
                             + ", ".join(distill_objectives()))
    if "feature" not in objectives:
        objectives.append("feature")  # the ratios' reference
    if rounds < 1 or warmup < 0:
        raise ValueError(f"tea bench distill-step: rounds={rounds} must be at least 1 and warmup={warmup} at least 0")
    device = _device(accelerator)
    data = load_data(dataset, data_seed)
    spec = _resolve_spec(spec, data)
    teacher = load_teacher(teacher_dir).to(device)
    train = data["train"]
    batch = batch or distill_config().batch_size
    if batch > len(train):
        raise ValueError(f"tea bench distill-step: --batch {batch} is more than the {len(train)} training images "
                         f"of {dataset}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    batches = [make_batch(train, order[torch.arange(i * batch, (i + 1) * batch) % len(train)], device)
               for i in range(rounds + warmup)]
    runs = {}
    for name in objectives:
        cfg = distill_config(name, seed=seed)
        student = distill_student(spec, seed, teacher, not OBJECTIVES[name].cls.trains_head).to(device).train()
        objective = build_objective(name, teacher=teacher, num_classes=spec["num_classes"])
        masks = getattr(objective, "masks", None)
        if masks is not None:  # the steady state after the first epoch: the segmenter's masks memoised
            for b in batches:
                masks.keep(b)
        optimizer = make_optimizer(student, cfg)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * group.get("lr_scale", 1.0)
        runs[name] = (cfg, student, objective, optimizer, [p for p in student.parameters() if p.requires_grad])

    def step(name):
        cfg, student, objective, optimizer, trainable = runs[name]

        def run(r):  # r < 0: the warm-up's batches, after the rounds'
            loss, _ = objective(batches[r], student, step_generator(seed, 0, r % len(batches), 0))
            optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=trainable)
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            optimizer.step()
        return run
    times = _interleaved({name: step(name) for name in objectives}, rounds, warmup, device)
    return {
        **{f"{k}_step_s": statistics.median(times[k]) for k in objectives},
        **{f"{k}_images_per_s": batch / statistics.median(times[k]) for k in objectives},
        **{f"{k}_over_feature": statistics.median(a / b for a, b in zip(times[k], times["feature"]))
           for k in objectives if k != "feature"},
        "objectives": objectives, "dataset": dataset, "teacher": str(teacher_dir), "model": spec,
        "batch": [batch, *train.x.shape[1:]], "rounds": rounds, "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    }


def print_distill_table(result: dict) -> None:
    print(f"`tea distill` steps on {result['dataset']} ({result['device']}, batch {tuple(result['batch'])}, "
          f"torch {result['torch_version']}, {result['threads']} threads, median of {result['rounds']} "
          f"interleaved rounds)")
    print(f"{'objective':<12}{'s/step':>10}{'images/s':>10}{'× feature':>11}")
    for k in result["objectives"]:
        over = 1.0 if k == "feature" else result[k + "_over_feature"]
        print(f"{k:<12}{result[k + '_step_s']:>10.4f}{result[k + '_images_per_s']:>10.0f}{over:>11.2f}")


def run_distill_step_cost(json_path: str | None = None, **kw) -> dict:
    result = distill_step_cost(**kw)
    print_distill_table(result)
    _write_json(result, json_path)
    return result
