"""The `tea` command line.  Every command has --help, takes --config FILE.yaml
(keys are the long option names, with - or _), and refuses unknown options."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import (
    ALL_DEMO_BENCHMARKS,
    BIAS_PRIORS,
    CLASS_MODES,
    CLASSIFIER_MASKS,
    CNN_DEPTH,
    CNN_WIDTH,
    DEMO_BENCHMARKS,
    FEATURE_MATCHES,
    HEATMAP_OBJECTIVES,
    LOSS_KINDS,
    OPTIMIZERS,
    SCHEDULES,
    SEGMENTER_BACKGROUNDS,
    SEGMENTER_TRAINING,
    SEGMENTER_UNET,
    STUDENT_BN_MODES,
    STUDENT_INITS,
    TEACHER_FILL,
    TEACHER_FILLS,
    TEACHER_CLASSIFIER,
    TEAConfig,
    TrainConfig,
    command_train_config,
    feature_layers,
    option_help,
)
from .data.names import COLOR_MODES, DATASETS, DISK_DATASETS, NORMALIZE_MODES
from .methods import benchmark_list
from .names import FILLS, HEATMAP_OF, MODEL_NAMES, VARIANTS

DISK = DISK_DATASETS

# ----------------------------------------------------------------- shared option groups


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _positive_float(text: str, zero: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 if zero else value > 0) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a {'non-negative' if zero else 'positive'} number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    return _positive_float(text, zero=True)


def _seed_list(text: str) -> list[int]:
    """--seeds: comma-separated distinct non-negative whole numbers."""
    parts = [p.strip() for p in str(text).split(",")]
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative whole numbers, e.g. 0,1,2; "
                                         f"got {text!r}")
    if len(set(map(int, parts))) != len(parts):
        raise argparse.ArgumentTypeError(f"each seed once, got {text!r}")
    return [int(p) for p in parts]


def _benchmark_list(text: str) -> list[str]:
    """--benchmarks: comma-separated distinct names of built-in benchmarks, or ``all`` (the demo's four;
    :func:`teakit.methods.benchmark_list` checks them)."""
    try:
        return benchmark_list(str(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _seeds_given(value) -> list | None:
    """--seeds as parsed (a list), or as a --config file may give it: a YAML list or one number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if value is not None and not isinstance(value, list):
        raise ValueError(f"--seeds: expected comma-separated non-negative whole numbers, e.g. 0,1,2; got {value!r}")
    return value


def _prior(text: str):
    """--bias-prior: one of teakit.config.BIAS_PRIORS, or comma-separated positive class frequencies."""
    if text in BIAS_PRIORS:
        return text
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) < 2 or not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected {', '.join(BIAS_PRIORS)} or comma-separated positive class "
                                         f"frequencies (e.g. 0.7,0.3), got {text!r}")
    return values


def _add_train(p: argparse.ArgumentParser, command: str):
    """The training options of `tea COMMAND`; every default is :func:`teakit.config.command_train_config`'s."""
    d = command_train_config(command)

    def h(name):
        return option_help(TrainConfig, name, getattr(d, name))
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=d.epochs, help=h("epochs"))
    g.add_argument("--batch-size", type=int, default=d.batch_size, help=h("batch_size"))
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    g.add_argument("--lr", type=float, default=d.lr, help=h("lr"))
    g.add_argument("--momentum", type=float, default=d.momentum, help=h("momentum"))
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--grad-clip", type=float, default=d.grad_clip, help=h("grad_clip"))
    g.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    head = (f"(default {command_train_config(command, 'tea').head_lr_scale:g} for the heatmap objectives "
            f"{', '.join(HEATMAP_OBJECTIVES)}: heatmaps teach the head slowly; {d.head_lr_scale:g} for the others)"
            if command in ("distill", "study") else f"(default {d.head_lr_scale:g})")
    g.add_argument("--head-lr-scale", type=float, default=None,
                   help=f"learning rate of the last linear layer = lr x this {head}")
    g.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help=h("warmup_steps"))
    g.add_argument("--ema", type=float, default=d.ema, help=option_help(TrainConfig, "ema"))
    g.add_argument("--seed", type=int, default=d.seed, help=option_help(TrainConfig, "seed"))
    g.add_argument("--data-seed", type=int, default=0, help="seed of the built-in dataset's splits")
    g.add_argument("--bias", type=float, default=None,
                   help="built-in datasets: share of train/val images carrying the shortcut (default: the "
                        "dataset's own: 1 for the digit benchmarks, 0.95 for glyphs-on-places, 0.9 for phantom-xrays)")
    g.add_argument("--data-root", help=f"folder of a dataset on disk ({', '.join(DISK)})")
    g.add_argument("--external-sources", help="xray: comma-separated sources kept out of training and "
                                               "selection, evaluated as the 'external' split")
    _add_reading(g)
    g.add_argument("--limit", type=int, help="use only the first N images of every split (quick runs)")
    g.add_argument("--model", choices=[m for m in MODEL_NAMES if m != "unet"], default="cnn",
                   help="cnn (default): the small CNN; or a torchvision classifier (ResNet, DenseNet, VGG), "
                        "randomly initialised unless --weights / --pretrained")
    g.add_argument("--pretrained", action="store_true",
                   help="torchvision models: ImageNet weights from the local torch cache (never downloaded)")
    g.add_argument("--stem", choices=("auto", "small", "imagenet"), default="auto",
                   help="torchvision models' first layers: small (3x3 stride-1 conv, no max-pool; CIFAR-style), "
                        "imagenet (torchvision's), auto (default): small for images of 32 px and less")
    g.add_argument("--weights", metavar="FILE",
                   help="initial weights: a local state dict (.pth/.pt/.safetensors, torchvision's key names), "
                        "loaded into every layer but a head of another size (and a replaced stem conv)")
    g.add_argument("--width", type=int, default=CNN_WIDTH, help=f"cnn width (default {CNN_WIDTH})")
    g.add_argument("--depth", type=int, default=CNN_DEPTH, help=f"cnn depth (default {CNN_DEPTH})")
    g.add_argument("--no-batchnorm", action="store_true", help="cnn without normalisation layers")
    g.add_argument("--no-bias", action="store_true",
                   help="cnn without additive terms (no biases, scale-only norm): logit = sum of relevance")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    f = p.add_argument_group("hardware (passed to Lightning Fabric)")
    f.add_argument("--accelerator", default="cpu", help="cpu, cuda, gpu, auto (default cpu)")
    f.add_argument("--devices", default="1", help="number of devices/processes (default 1)")
    f.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, … (default auto)")
    f.add_argument("--precision", default="32-true", help="32-true, bf16-mixed, … (default 32-true)")


def _add_reading(g, from_run: bool = False):
    """How images on disk are read: size, colour, normalisation, lazy decoding.  ``from_run``: every
    default is the run's own (`tea evaluate`)."""
    def default(value):
        return " (default: the run's)" if from_run else f" (default {value})"
    g.add_argument("--size", type=int, default=None if from_run else 32,
                   help="image side for datasets on disk" + default(32))
    g.add_argument("--color", choices=COLOR_MODES, default=None if from_run else "rgb",
                   help="rgb: grayscale images repeated over R, G, B, colour kept; gray: every image reduced to "
                        "its luminance first (X-ray sets mixing grayscale and RGB files)" + default("rgb"))
    g.add_argument("--normalize", choices=NORMALIZE_MODES, default=None if from_run else "none",
                   help="per-channel input normalisation: none (images in [0, 1]), imagenet (torchvision's "
                        "mean/std, for --pretrained), dataset (mean/std of the train split)" + default("none"))
    g.add_argument("--class-names", help="folder, xray, coco-on-places: the classes in label order, comma-"
                                         "separated; a label outside them is an error naming the file and row")
    g.add_argument("--lazy", action="store_true", default=None if from_run else False,
                   help="decode images when their batch is drawn instead of holding them in memory "
                        "(after one validation pass)")


def _reading(a) -> dict:
    """The non-default reading options, as data options."""
    from .data.load import DISK_OPTIONS
    return {k: getattr(a, k) for k, default in DISK_OPTIONS.items() if getattr(a, k) != default}


def _train_cfg(a, command: str, objective: str | None = None) -> TrainConfig:
    """`tea COMMAND`'s training configuration for ``objective``, with the options given."""
    given = dict(epochs=a.epochs, batch_size=a.batch_size, optimizer=a.optimizer, lr=a.lr, momentum=a.momentum,
                 weight_decay=a.weight_decay, grad_clip=a.grad_clip, schedule=a.schedule,
                 warmup_steps=a.warmup_steps, seed=a.seed, ema=a.ema)
    if a.head_lr_scale is not None:
        given["head_lr_scale"] = a.head_lr_scale
    return command_train_config(command, objective, **given)


# TEA's options (teakit.config.TEAConfig) as command-line options: field -> (flag, extra argparse keywords)
TEA_FLAGS = {
    "classes": ("--classes", {"choices": CLASS_MODES}),
    "p_top": ("--p-top", {"type": float}),
    "bias_prior": ("--bias-prior", {"type": _prior, "metavar": "uniform|teacher|teacher-decisions|none|P1,...,PK"}),
    "eps_log_range": ("--eps-range", {"type": float, "nargs": 2, "metavar": ("LO", "HI")}),
    "loss": ("--loss", {"choices": LOSS_KINDS}),
    "pyramid": ("--no-pyramid", {"action": "store_false", "help": "match the full-size maps only (no pyramid)"}),
    "min_side": ("--min-side", {"type": int}),
    "student_bn": ("--student-bn", {"choices": STUDENT_BN_MODES}),
    "joint_norm": ("--joint-norm", {"action": "store_true"}),
    "feature_weight": ("--feature-weight", {"type": float}),
    "feature_layer": ("--feature-layer", {"type": feature_layers, "metavar": "I[,I...]"}),
    "feature_match": ("--feature-match", {"choices": FEATURE_MATCHES}),
    "input_map_every": ("--input-map-every", {"type": int, "metavar": "N"}),
    "hidden_first": ("--hidden-first", {"type": float, "metavar": "FRACTION"}),
    "input_map_ramp": ("--input-map-ramp", {"type": float, "metavar": "FRACTION"}),
    "shift": ("--shift", {"type": int}),
    "permute_channels": ("--permute-channels", {"action": "store_true"}),
    "swap_backgrounds": ("--swap-backgrounds", {"type": float, "metavar": "P"}),
    "synthetic_backgrounds": ("--synthetic-backgrounds", {"type": float, "metavar": "P"}),
    "recolour_backgrounds": ("--recolour-backgrounds", {"type": float, "metavar": "P"}),
    "label_weight": ("--label-weight", {"type": float}),
    "kd_weight": ("--kd-weight", {"type": float}),
}
# the options the other heatmap objectives (explanation distillation with other explainers) share with TEA
EXPLANATION_OPTIONS = ("classes", "p_top", "loss", "pyramid", "min_side", "label_weight", "kd_weight", "shift",
                       "permute_channels", "swap_backgrounds", "synthetic_backgrounds", "recolour_backgrounds",
                       "bias_prior")


def _add_tea(p: argparse.ArgumentParser, title: str):
    """TEA's option group, generated from :class:`teakit.config.TEAConfig` (defaults and help)."""
    g, d = p.add_argument_group(title), TEAConfig()
    for name, (flag, kw) in TEA_FLAGS.items():
        default, kw = getattr(d, name), dict(kw)
        help = kw.pop("help", None) or option_help(TEAConfig, name)
        if kw.get("action") == "store_true":
            help = help.rsplit(" (default", 1)[0]
        g.add_argument(flag, dest=name, default=list(default) if name == "eps_log_range" else default,
                       help=help, **kw)


def _tea_options(a, names=tuple(TEA_FLAGS)) -> dict:
    """The TEA options given (every one, defaults included) as TEAConfig fields."""
    out = {name: getattr(a, name) for name in names}
    if "eps_log_range" in out:
        out["eps_log_range"] = tuple(out["eps_log_range"])
    return out


def _spec(a):
    from .runs import model_spec
    stem, weights = getattr(a, "stem", "auto"), getattr(a, "weights", None)
    init = {}
    if weights:
        if a.pretrained:
            raise ValueError("give either --weights FILE or --pretrained (ImageNet weights), not both")
        path = Path(weights).expanduser().absolute()
        if not path.is_file():
            raise FileNotFoundError(f"--weights: weights file {path} not found")
        init["weights"] = str(path)
    if a.model == "cnn":
        if a.pretrained:
            raise ValueError("--pretrained applies to the torchvision models (--model resnet18, densenet121, "
                             "vgg16_bn, ...), not the small cnn")
        if stem != "auto":
            raise ValueError("--stem applies to the torchvision models (--model resnet18, densenet121, ...), "
                             "not the small cnn")
        extra = {"bias": False} if a.no_bias else {}
        if a.no_batchnorm:
            extra["batchnorm"] = False
        return model_spec("cnn", None, width=a.width, depth=a.depth, **extra, **init)  # classes: from the data
    if a.pretrained:
        init["pretrained"] = True
    # stem "auto" is resolved from the data's image size when the model is built (teakit.commands._resolve_spec)
    return model_spec(a.model, None, stem=stem, **init)


def _fabric(a) -> dict:
    devices = int(a.devices) if str(a.devices).isdigit() else a.devices
    return {"accelerator": a.accelerator, "devices": devices, "strategy": a.strategy, "precision": a.precision}


def _common(a) -> dict:
    options = {"bias": a.bias} if a.bias is not None else {}
    if a.limit:
        options["limit"] = a.limit
    if a.data_root:
        options["data_root"] = a.data_root
        options["size"] = a.size
        options.update(_reading(a))
        if a.external_sources:
            options["external_sources"] = a.external_sources.split(",")
    return {"data_seed": a.data_seed, "data_options": options or None,
            "fabric": _fabric(a), "progress": not a.no_progress}

# ----------------------------------------------------------------- commands


def _cmd_train_teacher(a):
    from dataclasses import replace

    from .commands import train_teacher
    cfg = _train_cfg(a, "train-teacher")
    seg = replace(cfg, epochs=a.seg_epochs, lr=a.seg_lr, head_lr_scale=1.0)
    path = train_teacher(a.dataset, a.kind, a.out, spec=_spec(a), cfg=cfg, seg_cfg=seg, fill=a.fill, fills=a.fills,
                         seg_backgrounds={"paste": a.seg_paste, "swap": a.seg_swap, "synthetic": a.seg_synthetic,
                                          "recolour": a.seg_recolour},
                         seg_unet={"base": a.seg_base, "depth": a.seg_depth},
                         classifier_masks={"masks": a.cls_masks, "swap": a.cls_swap, "recolour": a.cls_recolour},
                         heatmap_of=a.heatmap_of, **_common(a))
    print(f"teacher written to {path.parent}")


def _cmd_train(a):
    from .commands import train
    if a.attention_model and a.objective != "gals":
        raise ValueError("--attention-model is for --objective gals")
    if a.isnet_classes and a.objective != "isnet":
        raise ValueError("--isnet-classes is for --objective isnet")
    options = ({"attention_model": a.attention_model} if a.objective == "gals" else
               {"classes": a.isnet_classes} if a.isnet_classes else None)
    train(a.dataset, a.objective, a.out, spec=_spec(a), cfg=_train_cfg(a, "train"), resume=a.resume, stage1=a.stage1,
          objective_options=options, **_common(a))


def _cmd_distill(a):
    from .commands import distill
    tea = (_tea_options(a) if a.objective == "tea" else
           _tea_options(a, EXPLANATION_OPTIONS) if a.objective in HEATMAP_OBJECTIVES else {})
    cfg = _train_cfg(a, "distill", a.objective)
    distill(a.dataset, a.teacher, a.out, spec=_spec(a), cfg=cfg, tea=tea, copy_head=a.copy_head,
            cache=a.cache, cache_dir=a.cache_dir, resume=a.resume, objective=a.objective,
            teacher_heatmap=a.teacher_heatmap, student_init=a.student_init, **_common(a))


def _cmd_evaluate(a):
    from .commands import EVAL_DATA_OPTIONS, evaluate_run
    given = {k: getattr(a, k) for k in EVAL_DATA_OPTIONS if k != "external_sources"}  # None: not given
    if a.external_sources is not None:
        given["external_sources"] = [s.strip() for s in a.external_sources.split(",") if s.strip()]
    res = evaluate_run(a.dataset, a.model, a.json, which=a.checkpoint, data_overrides=given, data_seed=a.data_seed)
    for split, r in res["splits"].items():
        print(f"{split:<8} " + " ".join(f"{k}={v:.4f}" for k, v in r.items() if isinstance(v, float)))
        groups = r.get("group_accuracy") or {}
        if len(groups) > 1:
            print("  per group: " + " ".join(f"{g}={acc:.4f}" for g, acc in groups.items()
                                               if isinstance(acc, float)))
        for source, acc in r.get("source_accuracy", {}).items():
            auc = r["source_auc"][source]
            print(f"  source {source}: accuracy={acc:.4f}" + (f" auc={auc:.4f}" if isinstance(auc, float) else ""))
    if a.json:
        print(f"wrote {a.json}")


def _cmd_explain(a):
    from .report.figures import explain_figure
    path = explain_figure(a.dataset, a.model, a.out, teacher_dir=a.teacher, split=a.split, n=a.n, seed=a.seed)
    print(f"wrote {path}")


def _cmd_curves(a):
    from .checkpoint import load_checkpoint
    from .report.figures import training_curves
    from .study import time_to_reach
    runs = dict(r.split("=", 1) if "=" in r else (Path(r).name, r) for r in a.runs)
    keys = [k.strip() for k in a.keys.split(",") if k.strip()]
    if not keys:
        raise ValueError("--keys: give at least one validation log entry (e.g. agreement,acc)")
    print(f"wrote {training_curves(runs, a.out, keys=keys, x=a.x)}")
    if a.reach is not None:
        print(f"| run | first epoch with validation {keys[0]} >= {a.reach:g} | step | training wall time (s) |")
        print("|---|---|---|---|")
        for label, run_dir in runs.items():
            hit = time_to_reach(load_checkpoint(run_dir).extra["history"], keys[0], a.reach)
            print(f"| {label} | " + ("not reached | – | – |" if hit is None else
                                     f"{hit['epoch']} | {hit['step']} | {hit['seconds']:.1f} |"))


def _cmd_check_data(a):
    from .data.load import read_disk_dataset
    from .data.readers import check_data, export_subpopbench
    splits, info = read_disk_dataset(a.dataset, a.data_root, a.external_sources.split(",")
                                     if a.external_sources else (), a.size, seed=a.data_seed, **_reading(a))
    print(check_data(splits, info))
    if a.export_subpopbench:
        print(f"wrote {export_subpopbench(splits, info, a.export_subpopbench)}")


def _cmd_export(a):
    from .data import load_builtin
    from .data.phantom_xrays import export_xray_folder
    from .data.readers import check_data
    options = {k: getattr(a, k) for k in ("size", "bias") if getattr(a, k) is not None}
    splits, info = load_builtin(a.dataset, seed=a.data_seed, with_info=True, **options)
    path = export_xray_folder(splits, info, a.out)
    print(check_data(splits, info))
    print(f"wrote {path} (read it with --dataset xray --data-root {a.out}; the split 'id' is written as 'test')")


def _cmd_bench(a):
    from .bench import run_distill_step_cost, run_step_cost
    if a.what == "distill-step":
        for name in ("dataset", "teacher"):
            if getattr(a, name) is None:
                raise ValueError(f"tea bench distill-step: --{name} is required")
        objectives = [v.strip() for v in str(a.objectives).split(",") if v.strip()]
        from .runs import model_spec
        spec = model_spec("cnn", None, width=a.width, depth=a.depth)
        run_distill_step_cost(a.json, dataset=a.dataset, teacher_dir=a.teacher, objectives=objectives, spec=spec,
                              batch=a.batch, rounds=a.rounds, seed=a.seed, accelerator=a.accelerator)
        return
    run_step_cost(a.json, rounds=a.rounds, seed=a.seed, accelerator=a.accelerator, batch=a.batch or 32,
                  size=a.size, channels_last=a.layout == "channels-last")


def _cmd_study(a):
    from .study import convergence, plot_runs, seed_summary
    if a.what == "lobo":
        from .lobo import lobo

        def _names(text):  # a comma-separated list, empty entries dropped (a --config file may give a list)
            items = text if isinstance(text, (list, tuple)) else str(text or "").split(",")
            return [str(v).strip() for v in items if str(v).strip()]
        for name in ("benchmarks", "teachers", "candidates", "out"):
            if getattr(a, name) is None:
                raise ValueError(f"tea study lobo: --{name} is required")
        teachers = {}
        pairs = [f"{k}={v}" for k, v in a.teachers.items()] if isinstance(a.teachers, dict) else _names(a.teachers)
        for item in pairs:
            name, sep, folder = item.partition("=")
            if not sep or not name or not folder:
                raise ValueError(f"--teachers: expected BENCHMARK=DIR, got {item!r}")
            if name.strip() in teachers:
                raise ValueError(f"--teachers: {name.strip()} given twice")
            teachers[name.strip()] = folder.strip()
        seeds = _seeds_given(a.seeds) or [a.seed]
        common = _common(a)
        if a.data_root:
            raise ValueError("tea study lobo: the benchmarks are built in; --data-root does not apply")
        path = lobo(_names(a.benchmarks), teachers, _names(a.candidates), a.out, seeds=seeds,
                    held_out=_names(a.held_out), cfg=_train_cfg(a, "study"), tea=_tea_options(a), spec=_spec(a),
                    data_seed=common["data_seed"], data_options=common["data_options"], fresh=a.fresh,
                    progress=common["progress"], fabric=_fabric(a), tolerance=a.tolerance / 100)
        print(f"wrote {path} and {path.with_suffix('.csv')}")
        return
    if a.what == "summary":
        if not a.runs:
            raise ValueError("tea study summary: give the study folders to summarise (--runs DIR ...)")
        table = seed_summary(a.runs)
        if a.out:
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(table + "\n")
        if a.plot:
            print(f"wrote {plot_runs(a.runs, a.plot)}")
        print(table)
        return
    for name in ("dataset", "teacher", "out"):
        if getattr(a, name) is None:
            raise ValueError(f"tea study convergence: --{name} is required")
    common = _common(a)
    tea = _tea_options(a)
    path = convergence(a.dataset, a.teacher, a.out, [v for v in a.variants.split(",") if v],
                       cfg=_train_cfg(a, "study"),
                       tea=tea, spec=_spec(a), data_seed=common["data_seed"], data_options=common["data_options"],
                       fresh=a.fresh, progress=common["progress"], fabric=_fabric(a), baselines=a.baselines)
    print(f"wrote {path}, {path.with_suffix('.png')} and {path.with_name('reach.md')}")


def _baseline_list(text: str) -> dict:
    """``OBJECTIVE[=LR],...`` to ``{objective: learning rate or None}``."""
    out = {}
    for item in (t.strip() for t in text.split(",")):
        name, _, lr = item.partition("=")
        if not name or name in out:
            raise argparse.ArgumentTypeError(f"{text!r}: expected distinct OBJECTIVE[=LR] entries, comma-separated")
        try:
            out[name] = float(lr) if lr else None
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r}: the learning rate after '=' must be a number") from None
    return out


def _cmd_demo(a):
    from .demo import default_jobs, run_demo
    seeds = _seeds_given(a.seeds)  # run_demo checks the entries of a YAML list
    if seeds is not None and a.seed is not None:  # both from a --config file (on the command line argparse refuses)
        raise ValueError("--seed and --seeds: give one (--seed N is the same as --seeds N)")
    run_demo(a.out, quick=a.quick, fresh=a.fresh, seed=a.seed, seeds=seeds, report_only=a.report_only,
             jobs=a.jobs or default_jobs(), width=a.width, depth=a.depth, lr_scale=a.lr_scale,
             benchmarks=a.benchmarks)

# ----------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tea", description="Training with Explanations Alone (TEA)")
    sub = p.add_subparsers(dest="command", required=True)

    def cmd(name, fn, help):
        c = sub.add_parser(name, help=help, description=help)
        c.add_argument("--config", help="YAML file of option values (long names); command-line flags win")
        c.set_defaults(func=fn)
        return c

    c = cmd("train-teacher", _cmd_train_teacher, "train a teacher that ignores the shortcut")
    c.add_argument("--dataset", choices=DATASETS, required=True)
    c.add_argument("--kind", choices=["debiased", "segmenter"], default="debiased")
    c.add_argument("--out", required=True)
    c.add_argument("--fill", choices=FILLS, default=TEACHER_FILL,
                   help=f"segmenter teacher's background fill (default {TEACHER_FILL})")
    c.add_argument("--fills", type=_positive_int, default=TEACHER_FILLS,
                   help="segmenter teacher, noise fill: draws of the fill its logits (its decision) are averaged "
                        f"over; each heatmap is one draw's (default {TEACHER_FILLS})")
    c.add_argument("--heatmap-of", choices=HEATMAP_OF, default="input",
                   help="segmenter teacher's heatmap: 'input' (default) gives filled pixels no relevance, "
                        "'masked' keeps the classifier's relevance on them")
    c.add_argument("--seg-epochs", type=int, default=SEGMENTER_TRAINING["epochs"],
                   help=f"U-Net epochs (segmenter kind; default {SEGMENTER_TRAINING['epochs']})")
    c.add_argument("--seg-lr", type=float, default=SEGMENTER_TRAINING["lr"],
                   help=f"U-Net learning rate (default {SEGMENTER_TRAINING['lr']:g})")
    c.add_argument("--seg-base", type=int, default=SEGMENTER_UNET["base"], metavar="N",
                   help="U-Net channels at full resolution, doubled at each halving "
                        f"(default {SEGMENTER_UNET['base']})")
    c.add_argument("--seg-depth", type=int, default=SEGMENTER_UNET["depth"], metavar="N",
                   help="U-Net halvings of the resolution (image sides divisible by 2^N; "
                        f"default {SEGMENTER_UNET['depth']})")
    c.add_argument("--seg-paste", type=float, default=SEGMENTER_BACKGROUNDS["paste"], metavar="P",
                   help="chance that a U-Net training image's foreground is pasted onto another training "
                        f"image (the masks' union is the target; default {SEGMENTER_BACKGROUNDS['paste']:g})")
    c.add_argument("--seg-swap", type=float, default=SEGMENTER_BACKGROUNDS["swap"], metavar="P",
                   help="chance that a U-Net training image's foreground is put on another training image's "
                        f"background, its object inpainted away (default {SEGMENTER_BACKGROUNDS['swap']:g})")
    c.add_argument("--seg-synthetic", type=float, default=SEGMENTER_BACKGROUNDS["synthetic"], metavar="P",
                   help="chance that a U-Net training image's foreground is put on a synthetic dead-leaves "
                        f"picture (after --seg-swap; default {SEGMENTER_BACKGROUNDS['synthetic']:g})")
    c.add_argument("--seg-recolour", type=float, default=SEGMENTER_BACKGROUNDS["recolour"], metavar="P",
                   help="chance that a U-Net training image's background is recoloured (mirrored with chance "
                        f"1/2, channels reordered; default {SEGMENTER_BACKGROUNDS['recolour']:g})")
    c.add_argument("--cls-masks", choices=CLASSIFIER_MASKS, default=TEACHER_CLASSIFIER["masks"],
                   help="the masks that cut the background of the segmenter teacher's classifier's training "
                        "images: 'true' (the data's) or 'segmenter' (the trained U-Net's own, as the teacher "
                        f"will use it; default {TEACHER_CLASSIFIER['masks']})")
    c.add_argument("--cls-swap", type=float, default=TEACHER_CLASSIFIER["swap"], metavar="P",
                   help="as --seg-swap, for the classifier's training images, with --cls-masks segmenter only "
                        f"(the true mask cuts the foreground; default {TEACHER_CLASSIFIER['swap']:g})")
    c.add_argument("--cls-recolour", type=float, default=TEACHER_CLASSIFIER["recolour"], metavar="P",
                   help="as --seg-recolour, for the classifier's training images, with --cls-masks segmenter "
                        f"only (default {TEACHER_CLASSIFIER['recolour']:g})")
    _add_train(c, "train-teacher")

    c = cmd("train", _cmd_train, "train a classifier with an objective that needs no teacher (ERM)")
    c.add_argument("--dataset", choices=DATASETS, required=True)
    # the objectives of teakit.objectives.registry that need no teacher, listed here so --help needs no torch
    # (tests/objectives/test_baselines.py checks the list against the registry)
    c.add_argument("--objective", default="erm",
                   choices=["erm", "rrr", "isnet", "gain", "gals", "groupdro", "irm", "pgi", "jtt"],
                   help="erm, or a baseline: rrr / isnet / gain (use masks), gals (needs --attention-model), "
                        "groupdro / irm / pgi (use the bias attribute as group), jtt (needs --stage1)")
    c.add_argument("--attention-model", metavar="FILE",
                   help="gals: a local vision-language attention model (a torch.export program *.pt2, or "
                        "TorchScript), called as model(images, class ids) -> (B, 1, h, w) maps (e.g. CLIP's "
                        "Grad-CAM for each class's prompt); nothing is downloaded")
    c.add_argument("--stage1", help="jtt: the ERM run folder whose training mistakes are up-weighted")
    c.add_argument("--isnet-classes", choices=["all", "random"],
                   help="isnet: the heatmaps of every class per image (all, the original ISNet; default) or of "
                        "one class drawn per image and step (random, the Stochastic ISNet: one heatmap per "
                        "step instead of K)")
    c.add_argument("--out", required=True)
    c.add_argument("--resume", action="store_true", help="continue from OUT's last checkpoint")
    _add_train(c, "train")

    c = cmd("distill", _cmd_distill, "train a student with TEA from a teacher")
    c.add_argument("--dataset", choices=DATASETS, required=True)
    c.add_argument("--teacher", required=True, help="a `tea train-teacher` folder")
    c.add_argument("--out", required=True)
    c.add_argument("--resume", action="store_true", help="continue from OUT's last checkpoint")
    c.add_argument("--objective", default="tea",
                   choices=["tea", "kd", "feature", "attention", "gradxinput", "inputgrad", "gradcam"],
                   help="tea (default) or a distillation baseline from the same teacher")
    c.add_argument("--cache", action="store_true", help="read teacher heatmaps from a precomputed cache")
    c.add_argument("--cache-dir", help="where the cache lives (default TEACHER/cache/DATASET-FINGERPRINT)")
    c.add_argument("--teacher-heatmap", choices=HEATMAP_OF,
                   help="segmenter teacher: 'masked' = the classifier's map of the masked image (fill pixels "
                        "included), 'input' = the teacher's map of its input (fill pixels get none); "
                        "default: the teacher folder's setting")
    _add_tea(c, "TEA objective (teakit.config.TEAConfig; the explanation distillations share the applicable ones)")
    t = c.add_argument_group("student")
    t.add_argument("--copy-head", action=argparse.BooleanOptionalAction, default=None,
                   help="copy the teacher's head into the student, frozen (default: only for objectives whose loss "
                        "cannot train a head: feature, attention)")
    t.add_argument("--student-init", choices=STUDENT_INITS, default="own",
                   help="own (default): the student's initial weights are drawn apart from the teacher's; "
                        "shared: from the run's seed, as a teacher built with the same seed drew them (before)")
    _add_train(c, "distill")

    c = cmd("evaluate", _cmd_evaluate, "accuracy (and agreement, background relevance) per test split")
    c.add_argument("--dataset", choices=DATASETS, help="default: the dataset the model was trained on")
    c.add_argument("--model", required=True,
                   help="a `tea train` / `tea distill` run folder, or a `tea train-teacher` folder (a segmenter "
                        "teacher is evaluated whole: segmenter, fill, classifier; a debiased one as its classifier)")
    c.add_argument("--json", help="write eval.json here")
    c.add_argument("--checkpoint", choices=["best", "last"], default="best")
    g = c.add_argument_group("data", "every option defaults to what the run was trained with (its config's "
                                     "data_options); give one to evaluate on another copy or another test set "
                                     "of the same layout")
    g.add_argument("--data-root", help="folder of a dataset on disk (same layout as the run's)")
    g.add_argument("--external-sources", help="xray: comma-separated sources evaluated as the 'external' split "
                                               "('' for none)")
    _add_reading(g, from_run=True)
    g.add_argument("--limit", type=int, help="only the first N images of every split (0: all of them)")
    g.add_argument("--data-seed", type=int, help="seed of the built-in dataset's splits (colored-mnist: colours)")

    c = cmd("explain", _cmd_explain, "PNG grid: image, teacher heatmap, student heatmap")
    c.add_argument("--dataset", choices=DATASETS, help="default: the dataset the model was trained on")
    c.add_argument("--model", required=True, help="a run folder, or a `tea train-teacher` folder (its maps alone)")
    c.add_argument("--teacher", help="teacher folder (default: the one the model was distilled from)")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--split", help="any split of the dataset (default: swapped, else test, else the first "
                                   "test split); an unknown one is an error listing them")
    c.add_argument("--n", type=_positive_int, default=8,
                   help="number of images, spread over the classes (round robin, default 8)")
    c.add_argument("--seed", type=int, default=0, help="which images are drawn from each class (default 0)")

    c = cmd("check-data", _cmd_check_data, "validate a dataset on disk and print a summary")
    c.add_argument("--dataset", choices=DISK, required=True)
    c.add_argument("--data-root", required=True)
    c.add_argument("--external-sources", help="xray: comma-separated external sources")
    _add_reading(c)
    c.add_argument("--data-seed", type=int, default=0, help="colored-mnist: seed of the split and colours")
    c.add_argument("--export-subpopbench", metavar="CSV", help="also write the metadata as filename,y,a,split")

    c = cmd("export", _cmd_export, "write a built-in benchmark to a folder in the layout --dataset xray reads")
    c.add_argument("--dataset", choices=["phantom-xrays"], required=True)
    c.add_argument("--out", required=True, help="output folder: metadata.csv, images/, masks/")
    c.add_argument("--data-seed", type=int, default=0, help="seed of the dataset's splits (default 0)")
    c.add_argument("--size", type=int, help="image side (default: the dataset's, 64)")
    c.add_argument("--bias", type=float, help="share of each class's train / val images from its own hospitals "
                                              "(default: the dataset's, 0.9)")

    c = cmd("curves", _cmd_curves, "plot validation curves of runs against steps or wall time")
    c.add_argument("runs", nargs="+", help="run folders, optionally LABEL=FOLDER")
    c.add_argument("--out", required=True, help="PNG path")
    c.add_argument("--keys", default="agreement,heatmap_loss",
                   help="comma-separated validation log entries, one panel each (e.g. agreement,acc)")
    c.add_argument("--x", choices=["steps", "seconds"], default="steps",
                   help="x axis: optimisation steps, or training wall time summed over epochs")
    c.add_argument("--reach", type=float, metavar="LEVEL",
                   help="also print when each run's first --keys entry first reaches LEVEL (epoch, step, seconds)")

    c = cmd("bench", _cmd_bench, "benchmarks (step-cost: seconds per TEA step vs ERM step; distill-step: "
                                 "seconds per `tea distill` step of TEA, feature distillation and KD with a real "
                                 "teacher on a benchmark's batches)")
    c.add_argument("what", choices=["step-cost", "distill-step"])
    c.add_argument("--json", help="write the figures to this JSON file")
    c.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (default 7)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--accelerator", default="cpu", help="cpu or cuda (default cpu)")
    c.add_argument("--batch", type=_positive_int, default=None,
                   help="images per step (default 32; distill-step: `tea distill`'s batch size)")
    c.add_argument("--size", type=int, default=64, help="step-cost: image side in pixels (default 64)")
    c.add_argument("--dataset", help="distill-step: a built-in benchmark")
    c.add_argument("--teacher", help="distill-step: a teacher folder (`tea train-teacher`)")
    c.add_argument("--objectives", default="tea,feature,kd",
                   help="distill-step: `tea distill` objectives, comma-separated (default tea,feature,kd; feature "
                        "distillation is always timed: the ratios' reference)")
    c.add_argument("--width", type=_positive_int, default=CNN_WIDTH,
                   help=f"distill-step: the student cnn's width (default {CNN_WIDTH})")
    c.add_argument("--depth", type=_positive_int, default=CNN_DEPTH,
                   help=f"distill-step: the student cnn's depth (default {CNN_DEPTH})")
    c.add_argument("--layout", choices=["channels-last", "contiguous"], default="channels-last",
                   help="the models' and the batch's memory layout: channels-last, the one `tea` builds and trains "
                        "every model in (default), or contiguous, PyTorch's own")

    c = cmd("study", _cmd_study, "convergence study: TEA variants, one change each from the baseline recipe, "
                                 "probed on the test splits every epoch; writes study.csv and study.png; or the "
                                 "leave-one-benchmark-out choice of a recipe (lobo)")
    c.add_argument("what", choices=["convergence", "summary", "lobo"],
                   help="convergence: train and probe the variants; summary: a markdown table of finished (or "
                        "stopped) study runs, each at its selected epoch, with mean and spread over seeds; lobo: "
                        "run every candidate on every benchmark and seed, choose each benchmark's candidate by "
                        "validation agreement with the teacher on the other benchmarks, report its shifted test "
                        "figures (lobo.md, lobo.csv)")
    c.add_argument("--dataset", choices=DATASETS, help="convergence: required")
    c.add_argument("--teacher", help="convergence: a `tea train-teacher` folder (required)")
    c.add_argument("--out", help="convergence, lobo: output folder (required); summary: write the table here too")
    c.add_argument("--benchmarks", help="lobo: comma-separated built-in benchmarks (required)")
    c.add_argument("--teachers", help="lobo: each benchmark's `tea train-teacher` folder, BENCHMARK=DIR,... "
                                      "(required)")
    c.add_argument("--candidates", help="lobo: comma-separated recipes from the variants ('default': tea "
                                        "distill's defaults; ties go to the one listed first) (required)")
    c.add_argument("--seeds", type=_seed_list, metavar="N,N,...",
                   help="lobo: comma-separated training seeds (default: --seed)")
    c.add_argument("--held-out", help="lobo: comma-separated benchmarks that no choice may look at (reported, "
                                      "chosen on the others)")
    c.add_argument("--tolerance", type=_non_negative_float, default=0.0, metavar="POINTS",
                   help="lobo: choose the first-listed candidate whose mean score is within POINTS (percentage "
                        "points) of the best; list cheaper recipes first (default 0: the best, ties to the first "
                        "listed)")
    c.add_argument("--runs", nargs="+", help="summary: study folders to read (searched for curve*.csv)")
    c.add_argument("--plot", help="summary: also plot every run's curves (one line per run) to this PNG")
    c.add_argument("--variants", default=",".join(VARIANTS),
                   help="comma-separated, from: " + ", ".join(VARIANTS) + " (default: all)")
    c.add_argument("--baselines", type=_baseline_list, default={}, metavar="OBJECTIVE[=LR],...",
                   help="convergence: other `tea distill` objectives to train and probe beside the variants "
                        "(e.g. feature=0.016,kd), each at the variants' epochs, batch, schedule and seed and at "
                        "learning rate LR (default: its own); reach.md then gives each variant's wall time to the "
                        "teacher against theirs")
    c.add_argument("--fresh", action="store_true", help="rerun variants (lobo: runs) that finished earlier")
    _add_tea(c, "baseline TEA objective (default: tea distill's)")
    _add_train(c, "study")

    c = cmd("demo", _cmd_demo, "the main job: the built-in benchmarks end to end, with a report")
    c.add_argument("--out", default="runs/demo")
    c.add_argument("--quick", action="store_true", help="minutes-long smoke version")
    c.add_argument("--benchmarks", type=_benchmark_list, default=None, metavar="NAME,NAME,...",
                   help="the built-in benchmarks to run (comma-separated, or all: "
                        + ",".join(ALL_DEMO_BENCHMARKS) + "; default " + ",".join(DEMO_BENCHMARKS)
                        + ", the ones that fit the 25-minute budget on 2 CPU cores)")
    c.add_argument("--fresh", action="store_true", help="recompute every stage")
    c.add_argument("--report-only", action="store_true",
                   help="train nothing: results and report from the stages finished so far")

    seed = c.add_mutually_exclusive_group()
    seed.add_argument("--seed", type=int, default=None, help="run every stage with this one seed (default 0)")
    seed.add_argument("--seeds", type=_seed_list, default=None, metavar="N,N,...",
                      help="run every stage once per seed (comma-separated, e.g. 0,1,2); the report shows each "
                           "result's mean ± sd over the seeds and whether differences exceed the seed spread")
    c.add_argument("--jobs", type=_positive_int, default=None,
                   help="stages run at once, each in its own process (default: 2 on 2+ cores, else 1)")
    c.add_argument("--width", type=_positive_int, default=None,
                   help="every classifier's CNN width (default 8, teakit.demo.WIDTH: the 20-minute budget)")
    c.add_argument("--depth", type=_positive_int, default=None,
                   help="every classifier's CNN depth (default: the commands' CNN, 6)")
    c.add_argument("--lr-scale", type=_positive_float, default=None,
                   help="every student's learning rate is its base one times this, instead of the scale "
                        "selected on validation (teakit.demo.LR_SCALES); for learning-rate selection")
    return p


def _apply_config(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Turn --config FILE.yaml into defaults of the chosen sub-command."""
    if "--config" not in argv and not any(a.startswith("--config=") for a in argv):
        return argv
    import yaml

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    path = Path(known.config)
    if not path.exists():
        parser.error(f"--config: {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        parser.error(f"--config: {path} is not valid YAML: {e}")
    if not isinstance(values, dict):
        parser.error(f"--config: {path} must hold a mapping of option: value")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = next((a for a in argv if a in sub.choices), None)
    if command is None:
        parser.error("--config needs a command")
    cp = sub.choices[command]
    dests = {a.dest: a for a in cp._actions}
    for action in cp._actions:  # long option names (--eps-range) as well as destinations (eps_log_range)
        for flag in action.option_strings:
            dests.setdefault(flag.lstrip("-").replace("-", "_"), action)
    defaults = {}
    for key, val in values.items():
        name = str(key).replace("-", "_")
        if name not in dests or name in ("help", "config"):
            cp.error(f"{path}: unknown option {key!r} for `tea {command}`")
        dest = dests[name].dest
        if name != dest and isinstance(dests[name], argparse._StoreFalseAction):
            val = not val  # no-pyramid: true in the file means pyramid false
        defaults[dest] = val
    cp.set_defaults(**defaults)
    for action in cp._actions:  # a required option given in the file is no longer required
        if action.dest in defaults:
            action.required = False
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    argv = _apply_config(parser, argv)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (FileNotFoundError, ValueError, ImportError) as e:
        print(f"tea {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


