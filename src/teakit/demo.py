"""`tea demo`: the built-in shortcut benchmarks end to end, with a report.

The benchmarks are :data:`teakit.config.DEMO_BENCHMARKS` (colored-digits and
digits-on-scenes, which fit the 25-minute budget on 2 CPU cores), or those
``--benchmarks NAME,NAME`` names (``all``: those two and the 64-px
glyphs-on-places and phantom-xrays).  Each declares its own test splits,
the figures that matter, its report columns and targets and the methods that
cannot apply there (:data:`teakit.methods.BENCHMARKS`): the digit benchmarks
``id``/``ood``/``swapped`` accuracy; glyphs-on-places (Waterbirds-shaped) its
``test`` split's worst-group accuracy, adjusted average and per-group
accuracy; phantom-xrays (chest-X-ray-shaped) ``external`` and ``swapped``
accuracy, with accuracy, macro-F1 and ROC-AUC per hospital and background
relevance outside the lungs.

For each benchmark: train the teacher (its :class:`~teakit.methods.Benchmark`'s kind: debiased on
colored-digits, a U-Net segmenter from the masks + a classifier on the others), train ERM on the biased data,
distil a TEA student from the teacher (`tea distill`'s recipe, hidden-layer
relevance included) and one of input maps only (the paper's objective, from
the cache), train every baseline (:data:`BASELINES`), and evaluate them all on
the benchmark's test splits.  Stages run in order of information, then of cost:
teacher, ERM and the TEA students of every benchmark first, then the
explanation-distillation baselines (as costly per step as TEA with a live
teacher), then the label-trained ones that train on explanations (RRR, ISNet,
GAIN), then the cheap rest, whose short stages keep both workers of ``--jobs 2``
busy to the end.  A baseline that cannot apply to a benchmark (mask methods where the
shortcut is in the foreground; GALS, which needs an attention model the demo
does not bundle) is listed as n/a with the reason.  Mask methods use each
benchmark's masks (the glyph on glyphs-on-places, the lungs on phantom-xrays);
GroupDRO and PGI group by the bias attribute as `tea train` decides
(``group_options``: class x place on glyphs-on-places, class x hospital on
phantom-xrays), IRM's environments are the hospitals on phantom-xrays and the
places on glyphs-on-places.
Writes ``OUT/results.json`` (rows ``{"dataset", "method", "split", "metric",
"value", "seed"}``; dict-valued metrics as one row per key, e.g.
``group_accuracy:round/land``, ``source_accuracy:Glenrock``,
:func:`result_rows`), ``OUT/report.md``, ``OUT/report.html`` and PNG figures.

``--seeds 0,1,2`` runs every stage once per seed (each seed's stages in folders
of their own: the seed is in every stage's config, so in its key) and keeps one
results row per seed; the report shows each cell's mean ± sd over the seeds
(with n) and whether each target's difference is larger than the seed spread
(:mod:`teakit.report.spread`).  ``--seed N`` (default 0) is the one-seed form.

Each stage's outputs live in ``OUT/stages/<name>-<hash>`` (the hash covers
the stage's config, its dependencies' folders and the fingerprints of its
dataset's splits, so a changed dataset is never served stale results); a
stage whose folder holds a ``done.json`` is reused, so re-running skips
finished work (``--fresh`` recomputes everything).  ``--quick`` is a smoke
version for CI: the first 192 images of each split (glyphs-on-places at 32 px),
2 epochs.  To fit 20 minutes on 2 CPU cores with the two digit benchmarks,
every classifier is the commands' CNN at width :data:`WIDTH` and every stage
trains for :data:`EPOCHS` epochs (``--width``/``--depth`` change the network);
the 64-px benchmarks keep these settings and cost several times more per epoch.
Every distilled student draws its initial weights apart from the teacher's;
each student's learning rate is its base one times a scale selected on the
biased validation set of the digit benchmarks (:data:`LR_SCALES`,
:func:`select_lr_scales`); on glyphs-on-places and phantom-xrays every student
keeps its base rate, not selected on that benchmark (TEA's base rate is the
one the leave-one-benchmark-out study chose over all four benchmarks).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing as mp
import os
import shutil
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from . import commands as C
from .config import (
    DEMO_BENCHMARKS,
    HEATMAP_OBJECTIVES,
    SEGMENTER_BACKGROUNDS,
    SEGMENTER_TRAINING,
    SEGMENTER_UNET,
    TEACHER_FILL,
    TEACHER_FILLS,
    TEAConfig,
    TrainConfig,
    command_train_config,
)
from .methods import (  # noqa: F401 (re-exported)
    BASELINES,
    BENCHMARKS,
    TEA_INPUT,
    Benchmark,
    benchmark_list,
    method_label,
)
from .objectives.registry import OBJECTIVES
from .runs import default_spec, model_spec

EXPENSIVE = set(HEATMAP_OBJECTIVES) - {"tea"}
# options of every heatmap objective (TEA and the explanation distillations); part of their stage keys, so
# a change recomputes them: the head bias is calibrated to TEAConfig's class prior (teakit.calibrate)
HEATMAP_OPTIONS = {"bias_prior": TEAConfig.bias_prior}
# TEA as `tea distill` runs it: the input maps and one hidden layer's relevance (TEAConfig); the live teacher,
# since the cache holds input maps only.  "TEA, input maps only" is the paper's objective, from the cache.
FEATURE_RELEVANCE = {"feature_weight": TEAConfig.feature_weight, "feature_layer": TEAConfig.feature_layer}
# new backgrounds behind a segmenter teacher's masks (TEAConfig: swapped, then recoloured), for the heatmap
# objectives with a live segmenter teacher; with other teachers, and with the cache, they do not apply
BACKGROUNDS = {"swap_backgrounds": TEAConfig.swap_backgrounds, "recolour_backgrounds": TEAConfig.recolour_backgrounds}
# options of the label-trained baselines (`tea train --objective`), part of their stage keys: ISNet explains one
# class per image and step, drawn at random (the authors' Stochastic ISNet), where `tea train` explains every class
# by default; all ten cost ten heatmaps a step, and that one stage set the demo's wall time (docs/results.md)
TRAIN_OPTIONS: dict[str, dict] = {"isnet": {"classes": "random"}}
# The demo's budget (about 20 minutes on 2 CPU cores for the original 28 stages): every classifier is the commands' CNN at
# width 8 instead of 16 (about a third of the convolution work; `--width 16` gives the commands' network), and
# every stage trains for 20 epochs (the U-Net segmenter 15).
WIDTH = 8
EPOCHS, SEGMENTER_EPOCHS = 20, 15
# Each student's learning rate is its base one (3e-3 for the label-trained, 1.6e-2 for TEA, 2e-3 for the other
# distilled) times its stage's scale here, selected from 0.5, 1, 2, 4 and 8 by each method's own validation
# selection metric on the biased validation set, seed 0 (`scripts/select_lr.py`; docs/recipe.md "Learning rates,
# selected on validation"; TEA's scales, selected when its base was 2e-3, are divided by 8: the same rates).
# Stages not listed keep 1.  Teachers are not scaled.  Selected on colored-digits and
# digits-on-scenes only: every glyphs-on-places and phantom-xrays student has scale 1, its base rate, not yet
# selected on validation (Benchmark.lr_selected; the report says so).
LR_SCALES: dict[str, float] = {
    "colored-digits-erm": 8, "colored-digits-feature": 8,
    "colored-digits-attention": 4, "colored-digits-groupdro": 2, "colored-digits-irm": 2, "colored-digits-jtt": 8,
    "colored-digits-gradxinput": 4, "colored-digits-inputgrad": 8, "colored-digits-gradcam": 0.5,
    "colored-digits-pgi": 8, "digits-on-scenes-gain": 2, "digits-on-scenes-isnet": 4,
    "digits-on-scenes-tea-input": 0.5, "digits-on-scenes-kd": 8,
    "digits-on-scenes-feature": 8, "digits-on-scenes-attention": 4, "digits-on-scenes-rrr": 4,
    "digits-on-scenes-irm": 2, "digits-on-scenes-gradxinput": 8,
    "digits-on-scenes-inputgrad": 4, "digits-on-scenes-gradcam": 0.5,
}
@dataclass
class Stage:
    name: str
    kind: str                 # teacher | train | distill
    dataset: str
    params: dict = field(default_factory=dict)
    deps: tuple = ()

    def key(self, resolved_deps: dict, data_version: str = "") -> str:
        blob = json.dumps({"stage": asdict(self), "deps": resolved_deps, "data": data_version},
                          sort_keys=True, default=str)
        return f"{self.name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def _cfg(d: dict) -> TrainConfig:
    return TrainConfig(**d)


def _scaled(stage: Stage, lr_scale: float | None) -> Stage:
    """``stage`` with its learning rate times ``lr_scale`` (default: its :data:`LR_SCALES` entry, else 1)."""
    scale = LR_SCALES.get(stage.name, 1.0) if lr_scale is None else lr_scale
    if scale == 1.0:
        return stage  # the same config, so the same key as before scales existed
    cfg = {**stage.params["cfg"], "lr": stage.params["cfg"]["lr"] * scale}
    return Stage(stage.name, stage.kind, stage.dataset, {**stage.params, "cfg": cfg}, stage.deps)


def plan(quick: bool, seed: int, width: int | None = None, depth: int | None = None,
         lr_scale: float | None = None, benchmarks=None) -> list[Stage]:
    """The demo's stages, in order.  Settings are the library defaults unless noted;
    ``width`` (default :data:`WIDTH`) and ``depth`` (default: the commands' CNN) set every classifier's size;
    ``lr_scale`` multiplies every student's base learning rate instead of its :data:`LR_SCALES` entry;
    ``benchmarks``: the benchmarks to run (:func:`benchmark_list`; default all of
    :data:`teakit.config.DEMO_BENCHMARKS`), each with the teacher its :class:`~teakit.methods.Benchmark`
    names and every method that applies there."""
    limit = 192 if quick else None
    t_ep, s_ep, seg_ep = (2, 2, 2) if quick else (EPOCHS, EPOCHS, SEGMENTER_EPOCHS)
    # every classifier (teachers' and students') is the commands' CNN at the demo's width; its options are in
    # each stage's key
    model = dict(default_spec()["kwargs"])
    for name, value in (("width", WIDTH if width is None else width), ("depth", depth)):
        if value is not None:
            model[name] = value
    core, cheap, costly = [], [], []
    for ds in benchmark_list(benchmarks):
        bench = BENCHMARKS[ds]
        kind = bench.teacher
        # --quick: the first `limit` images of each split, and smaller images where the benchmark says so
        data_opts = {"limit": limit, **dict(bench.quick_options)} if limit else {}
        teacher = Stage(f"{ds}-teacher", "teacher", ds, {
            "kind": kind, "cfg": asdict(command_train_config("train-teacher", epochs=t_ep, seed=seed)),
            "seg_cfg": asdict(TrainConfig(**{**SEGMENTER_TRAINING, "epochs": seg_ep, "seed": seed})),
            "data_options": data_opts,
            "model": model,
            **({"heatmap_of": "input", "seg_backgrounds": dict(SEGMENTER_BACKGROUNDS),
                "seg_unet": dict(SEGMENTER_UNET), "fill": TEACHER_FILL, "fills": TEACHER_FILLS}
               if kind == "segmenter" else {})})
        erm_cfg = asdict(command_train_config("train", epochs=t_ep, seed=seed))
        erm = Stage(f"{ds}-erm", "train", ds, {"objective": "erm", "cfg": erm_cfg, "data_options": data_opts,
                                               "model": model})
        # `tea distill`'s training: the heatmap objectives (TEA and the explanation distillations) with their
        # head learning rate, the others without
        quick_opts = {"warmup_steps": 0} if quick else {}
        tea_cfg = asdict(command_train_config("distill", "tea", epochs=s_ep, seed=seed, **quick_opts))
        backgrounds = BACKGROUNDS if kind == "segmenter" else {}
        tea = Stage(f"{ds}-tea", "distill", ds, {"objective": "tea", "cfg": tea_cfg,
                                                "tea": {**HEATMAP_OPTIONS, **FEATURE_RELEVANCE, **backgrounds},
                                                "data_options": data_opts, "model": model}, deps=(teacher.name,))
        tea_input = Stage(f"{ds}-tea-input", "distill", ds, {
            "objective": "tea", "cfg": tea_cfg, "tea": {**HEATMAP_OPTIONS, "feature_weight": 0.0},
            "data_options": data_opts, "model": model, "cache": True}, deps=(teacher.name,))
        core += [teacher, erm, tea, tea_input]
        for label, command, objective in BASELINES:
            if objective in bench.why_not:
                continue
            # distillation baselines get TEA's schedule (the explanation distillations with TEA's head learning
            # rate and calibration too), label-based ones ERM's
            heatmap = objective in EXPENSIVE
            cfg = erm_cfg if command == "train" else asdict(
                command_train_config("distill", objective, epochs=s_ep, seed=seed, **quick_opts))
            params = {"objective": objective, "cfg": cfg, "data_options": data_opts, "model": model}
            if objective in TRAIN_OPTIONS:
                params["objective_options"] = TRAIN_OPTIONS[objective]
            if heatmap:
                params["tea"] = {**HEATMAP_OPTIONS, **backgrounds}
            deps = (teacher.name,) if command == "distill" else (erm.name,) if objective == "jtt" else ()
            stage = Stage(f"{ds}-{objective}", command, ds, params, deps=deps)
            (costly if OBJECTIVES[objective].cls.explains else cheap).append(stage)  # EXPENSIVE among them
    # after the core stages, the baselines costliest first: with several workers, the short stages at the end
    # keep every worker busy until the last one finishes (docs/results.md, "The stages' own overheads")
    costly.sort(key=lambda stage: stage.params["objective"] not in EXPENSIVE)  # stable: benchmark order kept
    for stage in core + costly + cheap:
        # every distilled student draws its initial weights apart from the teacher's (teakit.runs.build_student);
        # feature distillation and attention transfer, whose losses cannot train a head, get the teacher's
        if stage.kind == "distill":
            stage.params["student_init"] = "own"
    return [s if s.kind == "teacher" else _scaled(s, lr_scale) for s in core + costly + cheap]


def data_version(dataset: str, **options) -> str:
    """A digest of every split's fingerprint (the demo's data seed, 0; ``options``: the builder's, e.g.
    ``size``): it changes whenever the data do."""
    data = C.load_data(dataset, **options)
    blob = json.dumps({name: d.fingerprint() for name, d in sorted(data.items())})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def data_versions(stages: list[Stage]) -> dict[str, str]:
    """:func:`data_version` of each dataset of ``stages``, built with its stages' options but the subset
    (``--quick``'s smaller images)."""
    options = {}
    for stage in stages:
        options.setdefault(stage.dataset, {k: v for k, v in (stage.params.get("data_options") or {}).items()
                                           if k != "limit"})
    return {ds: data_version(ds, **opts) for ds, opts in options.items()}


def stage_folders(stages: list[Stage], out: Path, versions: dict[str, str] | None = None) -> dict[str, Path]:
    """Each stage's folder under ``out/stages``, named by its key (its dependencies' folder names included,
    not their paths, so that a demo folder moved or copied elsewhere is still reused).
    ``versions``: each dataset's :func:`data_version`, when already known."""
    known = versions or {}
    versions = {**data_versions([s for s in stages if s.dataset not in known]), **known}
    folders: dict[str, Path] = {}
    for stage in stages:
        folders[stage.name] = Path(out) / "stages" / stage.key({d: folders[d].name for d in stage.deps},
                                                               versions[stage.dataset])
    return folders


def select_lr_scales(runs: dict[float, str | Path], seed: int = 0, width: int | None = None,
                     depth: int | None = None, quick: bool = False, benchmarks=None) -> dict[str, dict]:
    """Learning-rate selection on the validation set from full demos run with ``tea demo --lr-scale S``.

    ``runs`` maps each scale S to its demo folder.  For every student stage, each scale's score is the
    best value of the stage's own validation selection metric (``best`` in its ``best.json``; lower is
    better; the biased validation set, never a test split).  Returns ``{stage name: {"scores": {S: score},
    "selected": S}}``: the lowest score wins, ties going to the scale nearest 1, then the smaller.  Raises if a run
    misses a finished stage.  ``seed``, ``width``, ``depth``, ``quick`` and ``benchmarks`` are the demos'
    options."""
    from .checkpoint import load_checkpoint

    if not runs:
        raise ValueError("select_lr_scales needs at least one {scale: demo folder}")
    table: dict[str, dict] = {}
    for scale, out in sorted(runs.items()):
        stages = plan(quick, seed, width, depth, lr_scale=scale, benchmarks=benchmarks)
        folders = stage_folders(stages, Path(out))
        for stage in stages:
            if stage.kind == "teacher":
                continue
            folder = folders[stage.name]
            if not (folder / "done.json").exists():
                raise FileNotFoundError(f"{folder}: stage {stage.name} of the lr-scale {scale} run is not finished "
                                        f"(run `tea demo --out {out} --lr-scale {scale}` first)")
            best = load_checkpoint(folder, "best", map_location="cpu").extra["best"]
            table.setdefault(stage.name, {"scores": {}})["scores"][scale] = float(best)
    for entry in table.values():
        scores = entry["scores"]
        entry["selected"] = min(scores, key=lambda s: (scores[s], abs(math.log(s)), s))
    return table


def _run_stage(stage: Stage, folder: Path, folders: dict, progress: bool) -> dict:
    p = stage.params
    common = dict(data_options=p.get("data_options") or None, progress=progress,
                  spec=model_spec("cnn", None, **p["model"]) if "model" in p else None)
    if stage.kind == "teacher":
        C.train_teacher(stage.dataset, p["kind"], folder, cfg=_cfg(p["cfg"]), seg_cfg=_cfg(p["seg_cfg"]),
                        heatmap_of=p.get("heatmap_of", "input"), seg_backgrounds=p.get("seg_backgrounds"),
                        seg_unet=p.get("seg_unet"),
                        fill=p.get("fill", TEACHER_FILL), fills=p.get("fills", 1), **common)
    elif stage.kind == "train":
        stage1 = folders[stage.deps[0]] if stage.deps else None
        C.train(stage.dataset, p["objective"], folder, cfg=_cfg(p["cfg"]), stage1=stage1,
                objective_options=p.get("objective_options"), **common)
    elif stage.kind == "distill":
        C.distill(stage.dataset, folders[stage.deps[0]], folder, cfg=_cfg(p["cfg"]), cache=p.get("cache", False),
                  cache_dir=folder / "cache" if p.get("cache") else None, objective=p["objective"],
                  tea=p.get("tea"), student_init=p.get("student_init", "shared"), **common)
    else:
        raise ValueError(f"unknown stage kind {stage.kind!r}")
    if stage.kind == "teacher":  # the teacher as a whole (segmenter + classifier) is what is evaluated
        from .evaluate import evaluate_splits
        from .runs import load_teacher
        teacher = load_teacher(folder)
        data, info = C.load_data(stage.dataset, with_info=True, **(p.get("data_options") or {}))
        tests = {s: data[s] for s in BENCHMARKS[stage.dataset].splits}
        sources = {s: v for s, v in info.get("sources", {}).items() if s in tests}  # phantom-xrays' hospitals
        gen = torch.Generator().manual_seed(0)
        res = evaluate_splits(_TeacherAsModel(teacher), tests, heatmap_fn=lambda x:
                              teacher.heatmap(x, lambda lg: lg.argmax(1), 0.01, generator=gen),
                              train_groups=data["train"].bias, sources=sources or None)
    else:
        res = C.evaluate_run(stage.dataset, folder, data_options=p.get("data_options") or None)
    return res


class _TeacherAsModel:
    """Adapter: a teacher's logits through ``model(x)`` with a fixed noise seed."""

    def __init__(self, teacher):
        self.teacher = teacher

    def eval(self):
        return self

    def __call__(self, x):
        return self.teacher(x, generator=torch.Generator().manual_seed(0))


def _detail(metric: str, value, bench: Benchmark) -> dict[str, float]:
    """The rows ``{row metric: value}`` of one dict-valued evaluation metric (:attr:`Benchmark.detail_metrics`):
    ``auc_per_class`` gives ``auc``, the mean of the one-vs-rest AUCs (macro); the per-group and per-source
    ones give ``metric:key`` (a group by its name in ``bench.group_names``), a per-source AUC of several
    classes the mean of its one-vs-rest AUCs; a source with one class has no AUC and no row."""
    if metric == "auc_per_class":
        return {"auc": sum(value.values()) / len(value)}
    out = {}
    for key, v in value.items():
        if isinstance(v, dict):
            v = sum(v.values()) / len(v) if v else None
        if v is None:
            continue
        name = bench.group_names[int(key)] if metric == "group_accuracy" and bench.group_names else key
        out[f"{metric}:{name}"] = float(v)
    return out


def result_rows(dataset: str, method: str, res: dict, seed: int = 0) -> list[dict]:
    """The results.json rows of one stage's evaluation ``res`` (``{"splits": {split: {metric: value}}}``):
    one per float metric of each split, and those of the benchmark's dict-valued detail metrics
    (:func:`_detail`)."""
    bench = BENCHMARKS[dataset]
    rows = []
    for split, metrics in res["splits"].items():
        values = {m: v for m, v in metrics.items() if m != "n" and isinstance(v, float)}
        for metric in bench.detail_metrics:
            if metrics.get(metric):
                values.update(_detail(metric, metrics[metric], bench))
        rows += [{"dataset": dataset, "method": method, "split": split, "metric": metric, "value": value,
                  "seed": seed} for metric, value in values.items()]
    return rows


def _bar(done: int, total: int, elapsed: float, ran: int | None = None, width: int = 24) -> str:
    """Overall bar; the time left is estimated from the ``ran`` stages computed in this
    run (all ``done`` ones when not given), not from reused ones."""
    ran = done if ran is None else ran
    filled = int(width * done / max(total, 1))
    eta = elapsed / ran * (total - done) if ran else float("nan")
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} elapsed {elapsed / 60:4.1f} min" + (
        f", about {eta / 60:4.1f} min left" if ran else "")


def _execute(stage: Stage, folder: Path, folders: dict, progress: bool, log: Path | None = None,
             threads: int | None = None) -> dict:
    """Run one stage into ``folder`` and mark it done.  In a worker process its
    output goes to ``log`` and torch uses ``threads`` threads."""
    if threads:
        torch.set_num_threads(threads)
    if folder.exists():
        shutil.rmtree(folder)  # an unfinished stage: start it again
    s0 = time.perf_counter()
    if log is None:
        res = _run_stage(stage, folder, folders, progress)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            res = _run_stage(stage, folder, folders, progress)
    res["seconds"] = time.perf_counter() - s0
    (folder / "done.json").write_text(json.dumps(res, indent=2) + "\n")
    return res


def default_jobs() -> int:
    """Stages run side by side: one per pair of cores, at most 2 (small models use
    one core well, and each stage holds its data and teacher in memory)."""
    return max(1, min(2, (os.cpu_count() or 1)))


def _exit_with_parent(parent: int, poll: float = 1.0) -> None:
    """Worker initializer: end this worker once the process that started it is gone.  A demo killed
    outright (SIGTERM, SIGKILL) would otherwise leave its workers training on as orphans; the stage they
    had started has no ``done.json`` and is run again next time."""
    def watch():
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def _run_parallel(todo: list, folders: dict, logs: dict, jobs: int, progress: bool, finish) -> None:
    """Run ``todo`` (``(seed, stage)`` pairs) in ``jobs`` worker processes, each stage once the stages of its
    seed it builds on are done.  ``folders``: ``{seed: {stage name: folder}}``; ``logs``: ``{(seed, stage
    name): log file}``; ``finish(seed, stage, res, status)``."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pending, running, failed = list(todo), {}, []
    names = {(seed, s.name) for seed, s in todo}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                             initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
        while pending or running:
            for seed, stage in list(pending):
                if len(running) >= jobs or failed:
                    break
                if all((seed, d) not in names for d in stage.deps):  # what it builds on is finished
                    pending.remove((seed, stage))
                    running[pool.submit(_execute, stage, folders[seed][stage.name], folders[seed], progress,
                                        logs[seed, stage.name], threads)] = (seed, stage)
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                seed, stage = running.pop(future)
                try:
                    res = future.result()
                except Exception as e:  # let the others finish; report which stage failed and where its log is
                    failed.append(f"{stage.name}{_of_seed(seed, folders)} ({type(e).__name__}: {e}; "
                                  f"log: {logs[seed, stage.name]})")
                    continue
                names.discard((seed, stage.name))
                finish(seed, stage, res, f"{res['seconds']:.0f}s")
    if failed or pending:
        raise RuntimeError("tea demo: " + "; ".join(
            [f"stage failed: {f}" for f in failed]
            + [f"not started: {s.name}{_of_seed(seed, folders)}" for seed, s in pending]))


def _of_seed(seed: int, by_seed) -> str:
    """`` (seed N)`` when the demo runs several seeds, else nothing (its lines read as before seeds existed)."""
    return f" (seed {seed})" if len(by_seed) > 1 else ""


def seed_list(seed: int | None = None, seeds=None) -> list[int]:
    """The seeds a demo runs: ``seeds`` (distinct non-negative whole numbers, at least one), else ``[seed]``
    (default 0).  Giving both is an error."""
    if seeds is None:
        return [0 if seed is None else seed]
    if seed is not None:
        raise ValueError("give seed or seeds, not both (--seed N is the one-seed form of --seeds)")
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"seeds={seeds!r}: expected one or more non-negative whole numbers, e.g. 0,1,2")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds!r}: each seed once")
    return seeds


def run_demo(out="runs/demo", quick: bool = False, fresh: bool = False, seed: int | None = None,
             progress: bool = False, report_only: bool = False, jobs: int = 1, width: int | None = None,
             depth: int | None = None, lr_scale: float | None = None, seeds=None, benchmarks=None):
    """Run (or reuse) every stage, then write results.json and the report.  With
    ``report_only`` nothing is trained: the results and report cover the stages
    finished so far (e.g. while a long demo still runs elsewhere).  ``jobs`` > 1
    runs that many stages at once, each in its own process with
    ``cpu_count // jobs`` torch threads, a stage starting once the stages it
    builds on are done; their training logs go to ``OUT/logs/<stage>.log``
    (``OUT/logs/seed-<N>/<stage>.log`` with several seeds).
    ``lr_scale`` (for learning-rate selection) replaces every student's :data:`LR_SCALES` entry.
    ``seeds`` (e.g. ``[0, 1, 2]``) runs every stage once per seed, seed after seed (with ``jobs`` > 1 the
    next seed's stages fill free workers); ``seed`` (default 0) is the one-seed form; not both
    (:func:`seed_list`).  Every results row carries its ``"seed"``.  ``benchmarks`` (names, or one
    comma-separated string) runs those built-in benchmarks only (default: all of
    :data:`teakit.config.DEMO_BENCHMARKS`; :func:`benchmark_list`)."""
    from .report.report import write_report

    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r}: expected a positive number of stages to run at once")
    seeds = seed_list(seed, seeds)
    names = benchmark_list(benchmarks)
    out = Path(out)
    if fresh and (out / "stages").exists():
        shutil.rmtree(out / "stages")
    if lr_scale is not None and not lr_scale > 0:
        raise ValueError(f"lr_scale={lr_scale!r}: expected a positive factor")
    plans = {s: plan(quick, s, width, depth, lr_scale, names) for s in seeds}
    total = sum(len(stages) for stages in plans.values())
    results: dict[tuple[int, str], dict] = {}
    t0 = time.perf_counter()
    print(f"tea demo: {total} stages → {out}{' (quick)' if quick else ''}"
          f"{f', seeds {seeds}' if len(seeds) > 1 else ''}{f', {jobs} at a time' if jobs > 1 else ''}", flush=True)
    versions = data_versions([s for stages in plans.values() for s in stages])
    folders = {s: stage_folders(stages, out, versions) for s, stages in plans.items()}

    ran = []

    def finish(seed: int, stage: Stage, res: dict, status: str):
        results[seed, stage.name] = res
        if status != "reused":
            ran.append((seed, stage.name))
        accs = " ".join(f"{s}={res['splits'][s]['accuracy']:.3f}" for s in BENCHMARKS[stage.dataset].splits)
        print(f"{_bar(len(results), total, time.perf_counter() - t0, len(ran))} | "
              f"{stage.name + _of_seed(seed, plans):<32} {status:>7} | {accs}", flush=True)

    todo = []
    for seed_, stages in plans.items():
        for stage in stages:
            done_file = folders[seed_][stage.name] / "done.json"
            if done_file.exists():
                finish(seed_, stage, json.loads(done_file.read_text()), "reused")
            elif report_only:
                print(f"{'':>24} | {stage.name + _of_seed(seed_, plans):<32} not run yet", flush=True)
            else:
                todo.append((seed_, stage))
    if jobs == 1:
        for seed_, stage in todo:
            res = _execute(stage, folders[seed_][stage.name], folders[seed_], progress)
            finish(seed_, stage, res, f"{res['seconds']:.0f}s")
    elif todo:
        logs = {(s, stage.name): out / "logs" / (f"seed-{s}" if len(seeds) > 1 else "") / f"{stage.name}.log"
                for s, stage in todo}
        _run_parallel(todo, folders, logs, jobs, progress, finish)
    rows: list[dict] = []
    for seed_, stages in plans.items():  # seed by seed, in plan order, whatever order the stages finished in
        for stage in stages:
            if (seed_, stage.name) in results:
                rows += result_rows(stage.dataset, method_label(stage), results[seed_, stage.name], seed_)
        rows += [{"dataset": ds, "method": next(m for m, _, o in BASELINES if o == objective), "split": split,
                  "metric": "accuracy", "value": None, "seed": seed_, "note": f"n/a: {why}"}
                 for ds in names for objective, why in BENCHMARKS[ds].not_applicable
                 for split in BENCHMARKS[ds].splits]
    out.mkdir(parents=True, exist_ok=True)  # --report-only before any stage ran
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    seconds = {s: {name: res.get("seconds", float("nan")) for (s_, name), res in results.items() if s_ == s}
               for s in seeds}
    chosen = ",".join(names) if names != list(DEMO_BENCHMARKS) else None
    options = " ".join(f"--{name} {value}" for name, value in (("width", width), ("depth", depth),
                                                                ("lr-scale", lr_scale), ("benchmarks", chosen))
                       if value is not None)
    checks = write_report(out, rows, {s: (plans[s], folders[s]) for s in seeds}, quick=quick, seconds=seconds,
                          options=options)
    from .report.targets import summary
    print(summary(checks))
    print(f"wrote {out / 'results.json'}, {out / 'report.md'}, {out / 'report.html'} "
          f"({(time.perf_counter() - t0) / 60:.1f} min)")
    return rows
