"""The `tea` command line.  Every command has --help, takes --config FILE.yaml
(keys are the long option names, with - or _), and refuses unknown options."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .data import BUILTIN
from .recipe import CNN_DEPTH, FEATURE_LAYER, FEATURE_WEIGHT, HEATMAP_HEAD_LR_SCALE, HEATMAP_OBJECTIVES, STUDENT_INITS

DATASETS = BUILTIN + ("colored-mnist", "folder", "waterbirds", "xray", "coco-on-places")
DISK = DATASETS[len(BUILTIN):]

# ----------------------------------------------------------------- shared option groups


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _prior(text: str):
    """--bias-prior: 'uniform', 'none', or comma-separated positive class frequencies."""
    if text in ("uniform", "none"):
        return text
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) < 2 or not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected uniform, none or comma-separated positive class frequencies "
                                         f"(e.g. 0.7,0.3), got {text!r}")
    return values


def _add_train(p: argparse.ArgumentParser, epochs: int, lr: float, batch_size: int = 64, warmup: int = 0,
               head_lr_help: str = "default 1"):
    from .models import MODEL_NAMES
    from .train import OPTIMIZERS, SCHEDULES

    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=epochs, help=f"default {epochs}")
    g.add_argument("--batch-size", type=int, default=batch_size, help=f"per process (default {batch_size})")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    g.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr:g})")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm, 0 = off (default 1.0)")
    g.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    g.add_argument("--head-lr-scale", type=float, default=None,
                   help=f"learning rate of the last linear layer = lr × this ({head_lr_help})")
    g.add_argument("--warmup-steps", type=int, default=warmup, help=f"linear warm-up steps (default {warmup})")
    g.add_argument("--ema", type=float, default=0.0,
                   help="decay of an exponential moving average of the weights (0 = off); the average is "
                        "what is validated and saved as best")
    g.add_argument("--seed", type=int, default=0, help="training seed (init, order, draws)")
    g.add_argument("--data-seed", type=int, default=0, help="seed of the built-in dataset's splits")
    g.add_argument("--bias", type=float, default=1.0, help="share of train/val images carrying the shortcut")
    g.add_argument("--data-root", help=f"folder of a dataset on disk ({', '.join(DISK)})")
    g.add_argument("--external-sources", help="xray: comma-separated sources kept out of training and "
                                               "selection, evaluated as the 'external' split")
    _add_reading(g)
    g.add_argument("--limit", type=int, help="use only the first N images of every split (quick runs)")
    g.add_argument("--model", choices=[m for m in MODEL_NAMES if m != "unet"], default="cnn")
    g.add_argument("--pretrained", action="store_true",
                   help="resnets: ImageNet weights from the local torch cache (never downloaded)")
    g.add_argument("--width", type=int, default=16, help="cnn width (default 16)")
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


def _add_reading(g):
    """How images on disk are read: size, colour, normalisation, lazy decoding."""
    from .data.decode import COLOR_MODES
    from .data.normalize import NORMALIZE_MODES

    g.add_argument("--size", type=int, default=32, help="image side for datasets on disk (default 32)")
    g.add_argument("--color", choices=COLOR_MODES, default="rgb",
                   help="rgb: grayscale images repeated over R, G, B, colour kept (default); gray: every "
                        "image reduced to its luminance first (X-ray sets mixing grayscale and RGB files)")
    g.add_argument("--normalize", choices=NORMALIZE_MODES, default="none",
                   help="per-channel input normalisation: none (images in [0, 1], default), imagenet "
                        "(torchvision's mean/std, for --pretrained), dataset (mean/std of the train split)")
    g.add_argument("--class-names", help="folder, xray, coco-on-places: the classes in label order, comma-"
                                         "separated; a label outside them is an error naming the file and row")
    g.add_argument("--lazy", action="store_true",
                   help="decode images when their batch is drawn instead of holding them in memory "
                        "(after one validation pass)")


def _reading(a) -> dict:
    """The non-default reading options, as data options."""
    from .commands import DISK_OPTIONS
    return {k: getattr(a, k) for k, default in DISK_OPTIONS.items() if getattr(a, k) != default}


def _train_cfg(a, head_lr_scale: float = 1.0):
    """The training config from the options; ``head_lr_scale``: the command's default for it."""
    from .train import TrainConfig
    return TrainConfig(epochs=a.epochs, batch_size=a.batch_size, optimizer=a.optimizer, lr=a.lr,
                       momentum=a.momentum, weight_decay=a.weight_decay, grad_clip=a.grad_clip,
                       schedule=a.schedule, warmup_steps=a.warmup_steps, seed=a.seed, ema=a.ema,
                       head_lr_scale=head_lr_scale if a.head_lr_scale is None else a.head_lr_scale)


def _spec(a):
    from .runs import model_spec
    if a.model == "cnn":
        if a.pretrained:
            raise ValueError("--pretrained applies to --model resnet18/34/50, not the small cnn")
        extra = {"bias": False} if a.no_bias else {}
        if a.no_batchnorm:
            extra["batchnorm"] = False
        return model_spec("cnn", None, width=a.width, depth=a.depth, **extra)  # classes: from the data
    return model_spec(a.model, None, small_input=True, **({"pretrained": True} if a.pretrained else {}))


def _fabric(a) -> dict:
    devices = int(a.devices) if str(a.devices).isdigit() else a.devices
    return {"accelerator": a.accelerator, "devices": devices, "strategy": a.strategy, "precision": a.precision}


def _common(a) -> dict:
    options = {"bias": a.bias} if a.bias != 1.0 else {}
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
    from .commands import train_teacher
    from .train import TrainConfig
    cfg = _train_cfg(a)
    seg = TrainConfig(**{**cfg.__dict__, "epochs": a.seg_epochs, "lr": a.seg_lr, "head_lr_scale": 1.0})
    path = train_teacher(a.dataset, a.kind, a.out, spec=_spec(a), cfg=cfg, seg_cfg=seg, fill=a.fill,
                         heatmap_of=a.heatmap_of, **_common(a))
    print(f"teacher written to {path.parent}")


def _cmd_train(a):
    from .commands import train
    train(a.dataset, a.objective, a.out, spec=_spec(a), cfg=_train_cfg(a), resume=a.resume, stage1=a.stage1,
          **_common(a))


def _cmd_distill(a):
    from .commands import distill
    tea, heatmap = {}, a.objective in HEATMAP_OBJECTIVES
    if heatmap:
        tea = {"classes": a.classes, "p_top": a.p_top, "loss": a.loss, "pyramid": not a.no_pyramid,
               "min_side": a.min_side, "label_weight": a.label_weight, "kd_weight": a.kd_weight,
               "shift": a.shift, "bias_prior": a.bias_prior}
        if a.objective == "tea":
            tea.update(joint_norm=a.joint_norm, eps_log_range=tuple(a.eps_range), student_bn=a.student_bn,
                       feature_weight=a.feature_weight, feature_layer=a.feature_layer)
    cfg = _train_cfg(a, HEATMAP_HEAD_LR_SCALE if heatmap else 1.0)
    distill(a.dataset, a.teacher, a.out, spec=_spec(a), cfg=cfg, tea=tea, copy_head=a.copy_head,
            cache=a.cache, cache_dir=a.cache_dir, resume=a.resume, objective=a.objective,
            teacher_heatmap=a.teacher_heatmap, student_init=a.student_init, **_common(a))


def _cmd_evaluate(a):
    from .commands import evaluate_run
    res = evaluate_run(a.dataset, a.model, a.json, which=a.checkpoint)
    for split, r in res["splits"].items():
        print(f"{split:<8} " + " ".join(f"{k}={v:.4f}" for k, v in r.items() if isinstance(v, float)))
        for source, acc in r.get("source_accuracy", {}).items():
            auc = r["source_auc"][source]
            print(f"  source {source}: accuracy={acc:.4f}" + (f" auc={auc:.4f}" if isinstance(auc, float) else ""))
    if a.json:
        print(f"wrote {a.json}")


def _cmd_explain(a):
    from .report.figures import explain_figure
    path = explain_figure(a.dataset, a.model, a.out, teacher_dir=a.teacher, split=a.split, n=a.n)
    print(f"wrote {path}")


def _cmd_curves(a):
    from .report.figures import training_curves
    runs = dict(r.split("=", 1) if "=" in r else (Path(r).name, r) for r in a.runs)
    print(f"wrote {training_curves(runs, a.out)}")


def _cmd_check_data(a):
    from .commands import read_disk_dataset
    from .data.readers import check_data, export_subpopbench
    splits, info = read_disk_dataset(a.dataset, a.data_root, a.external_sources.split(",")
                                     if a.external_sources else (), a.size, seed=a.data_seed, **_reading(a))
    print(check_data(splits, info))
    if a.export_subpopbench:
        print(f"wrote {export_subpopbench(splits, info, a.export_subpopbench)}")


def _cmd_bench(a):
    from .bench import run_step_cost
    run_step_cost(a.json, rounds=a.rounds, seed=a.seed)


def _cmd_study(a):
    from .study import convergence, plot_runs, seed_summary
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
    tea = {"classes": a.classes, "p_top": a.p_top, "eps_log_range": tuple(a.eps_range), "loss": a.loss,
           "pyramid": not a.no_pyramid, "min_side": a.min_side, "bias_prior": a.bias_prior}
    path = convergence(a.dataset, a.teacher, a.out, [v for v in a.variants.split(",") if v], cfg=_train_cfg(a),
                       tea=tea, spec=_spec(a), data_seed=common["data_seed"], data_options=common["data_options"],
                       fresh=a.fresh, progress=common["progress"], fabric=_fabric(a))
    print(f"wrote {path} and {path.with_suffix('.png')}")


def _cmd_demo(a):
    from .demo import default_jobs, run_demo
    run_demo(a.out, quick=a.quick, fresh=a.fresh, seed=a.seed, report_only=a.report_only,
             jobs=a.jobs or default_jobs(), width=a.width, depth=a.depth, lr_scale=a.lr_scale)

# ----------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from .objectives.heatmap_loss import KINDS
    from .objectives.tea import CLASS_MODES
    from .teachers import FILLS, HEATMAP_OF

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
    c.add_argument("--fill", choices=FILLS, default="noise", help="segmenter teacher's background fill")
    c.add_argument("--heatmap-of", choices=HEATMAP_OF, default="input",
                   help="segmenter teacher's heatmap: 'input' (default) gives filled pixels no relevance, "
                        "'masked' keeps the classifier's relevance on them")
    c.add_argument("--seg-epochs", type=int, default=15, help="U-Net epochs (segmenter kind)")
    c.add_argument("--seg-lr", type=float, default=3e-3)
    _add_train(c, epochs=30, lr=3e-3)

    c = cmd("train", _cmd_train, "train a classifier with an objective that needs no teacher (ERM)")
    c.add_argument("--dataset", choices=DATASETS, required=True)
    c.add_argument("--objective", default="erm", choices=["erm", "rrr", "isnet", "groupdro", "irm", "jtt"],
                   help="erm, or a baseline: rrr / isnet (use masks), groupdro / irm (use the bias "
                        "attribute as group), jtt (needs --stage1)")
    c.add_argument("--stage1", help="jtt: the ERM run folder whose training mistakes are up-weighted")
    c.add_argument("--out", required=True)
    c.add_argument("--resume", action="store_true", help="continue from OUT's last checkpoint")
    _add_train(c, epochs=30, lr=3e-3)

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
    t = c.add_argument_group("TEA objective")
    t.add_argument("--classes", choices=CLASS_MODES, default="sample")
    t.add_argument("--p-top", type=float, default=0.5, help="chance of explaining the teacher's top class")
    t.add_argument("--bias-prior", type=_prior, default="uniform", metavar="uniform|none|P1,...,PK",
                   help="after every epoch, set the head bias so the mean prediction on the unlabelled training "
                        "images matches a class prior (heatmaps cannot teach per-class logit offsets; no labels, "
                        "no teacher output, no heatmap changed): uniform (default), none (leave the bias), or "
                        "one frequency per class, e.g. 0.7,0.3 for imbalanced data")
    t.add_argument("--eps-range", type=float, nargs=2, default=[-2.0, -1.0], metavar=("LO", "HI"),
                   help="ε = 10^u, u ~ U(LO, HI) (default -2 -1)")
    t.add_argument("--loss", choices=KINDS, default="l1")
    t.add_argument("--no-pyramid", action="store_true")
    t.add_argument("--min-side", type=int, default=8, help="smallest pyramid level side (default 8)")
    t.add_argument("--student-bn", choices=("batch", "running"), default="batch",
                   help="BatchNorm statistics while the student's training heatmap is computed: the batch's "
                        "(default) or the running ones, as at test time")
    t.add_argument("--joint-norm", action="store_true",
                   help="classes pair/all: one loss normalisation per image over its maps, so their relative "
                        "sizes must match too")
    t.add_argument("--feature-weight", type=float, default=FEATURE_WEIGHT,
                   help=f"+ w·the same loss between the student's and the teacher's LRP relevance of a hidden ReLU "
                        f"layer, channel by channel (default {FEATURE_WEIGHT:g}; needs the live teacher and a student "
                        f"whose layer has the teacher's shape; 0: the input maps alone, as in the paper)")
    t.add_argument("--feature-layer", type=int, default=FEATURE_LAYER,
                   help=f"which 4-D ReLU output --feature-weight matches, in forward order (default {FEATURE_LAYER}: "
                        "the second to last)")
    t.add_argument("--shift", type=int, default=0,
                   help="random translation of up to N pixels, the same for teacher and student (default 0)")
    t.add_argument("--copy-head", action=argparse.BooleanOptionalAction, default=None,
                   help="copy the teacher's head into the student, frozen (default: only for objectives whose loss "
                        "cannot train a head: feature, attention)")
    t.add_argument("--student-init", choices=STUDENT_INITS, default="own",
                   help="own (default): the student's initial weights are drawn apart from the teacher's; "
                        "shared: from the run's seed, as a teacher built with the same seed drew them (before)")
    t.add_argument("--label-weight", type=float, default=0.0, help="ablation only: + w·cross-entropy")
    t.add_argument("--kd-weight", type=float, default=0.0, help="ablation only: + w·logit KD (T=3)")
    _add_train(c, epochs=80, lr=2e-3, warmup=100,
               head_lr_help=f"default {HEATMAP_HEAD_LR_SCALE:g} for the heatmap objectives (tea, gradxinput, "
                            "inputgrad, gradcam): heatmaps teach the head slowly; 1 for the others")

    c = cmd("evaluate", _cmd_evaluate, "accuracy (and agreement, background relevance) per test split")
    c.add_argument("--dataset", choices=DATASETS, help="default: the dataset the model was trained on")
    c.add_argument("--model", required=True, help="a run folder")
    c.add_argument("--json", help="write eval.json here")
    c.add_argument("--checkpoint", choices=["best", "last"], default="best")

    c = cmd("explain", _cmd_explain, "PNG grid: image, teacher heatmap, student heatmap")
    c.add_argument("--dataset", choices=DATASETS, required=True)
    c.add_argument("--model", required=True)
    c.add_argument("--teacher", help="teacher folder (default: the one the model was distilled from)")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--split", default="swapped", choices=["id", "ood", "swapped", "val"])
    c.add_argument("--n", type=int, default=8, help="number of images")

    c = cmd("check-data", _cmd_check_data, "validate a dataset on disk and print a summary")
    c.add_argument("--dataset", choices=DISK, required=True)
    c.add_argument("--data-root", required=True)
    c.add_argument("--external-sources", help="xray: comma-separated external sources")
    _add_reading(c)
    c.add_argument("--data-seed", type=int, default=0, help="colored-mnist: seed of the split and colours")
    c.add_argument("--export-subpopbench", metavar="CSV", help="also write the metadata as filename,y,a,split")

    c = cmd("curves", _cmd_curves, "plot validation agreement and heatmap loss against steps for runs")
    c.add_argument("runs", nargs="+", help="run folders, optionally LABEL=FOLDER")
    c.add_argument("--out", required=True, help="PNG path")

    c = cmd("bench", _cmd_bench, "benchmarks (step-cost: seconds per TEA step vs ERM step)")
    c.add_argument("what", choices=["step-cost"])
    c.add_argument("--json", help="write the figures to this JSON file")
    c.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (default 7)")
    c.add_argument("--seed", type=int, default=0)

    from .study import VARIANTS
    c = cmd("study", _cmd_study, "convergence study: TEA variants, one change each from the baseline recipe, "
                                 "probed on the test splits every epoch; writes study.csv and study.png")
    c.add_argument("what", choices=["convergence", "summary"],
                   help="convergence: train and probe the variants; summary: a markdown table of finished (or "
                        "stopped) study runs, each at its selected epoch, with mean and spread over seeds")
    c.add_argument("--dataset", choices=DATASETS, help="convergence: required")
    c.add_argument("--teacher", help="convergence: a `tea train-teacher` folder (required)")
    c.add_argument("--out", help="convergence: output folder (required); summary: write the table here too")
    c.add_argument("--runs", nargs="+", help="summary: study folders to read (searched for curve*.csv)")
    c.add_argument("--plot", help="summary: also plot every run's curves (one line per run) to this PNG")
    c.add_argument("--variants", default=",".join(VARIANTS),
                   help="comma-separated, from: " + ", ".join(VARIANTS) + " (default: all)")
    c.add_argument("--fresh", action="store_true", help="rerun variants that finished earlier")
    t = c.add_argument_group("baseline TEA objective")
    t.add_argument("--classes", choices=CLASS_MODES, default="sample")
    t.add_argument("--p-top", type=float, default=0.5)
    t.add_argument("--bias-prior", type=_prior, default="uniform", metavar="uniform|none|P1,...,PK")
    t.add_argument("--eps-range", type=float, nargs=2, default=[-2.0, -1.0], metavar=("LO", "HI"))
    t.add_argument("--loss", choices=KINDS, default="l1")
    t.add_argument("--no-pyramid", action="store_true")
    t.add_argument("--min-side", type=int, default=8)
    _add_train(c, epochs=40, lr=2e-3, warmup=100)

    c = cmd("demo", _cmd_demo, "the main job: both built-in benchmarks end to end, with a report")
    c.add_argument("--out", default="runs/demo")
    c.add_argument("--quick", action="store_true", help="minutes-long smoke version")
    c.add_argument("--fresh", action="store_true", help="recompute every stage")
    c.add_argument("--report-only", action="store_true",
                   help="train nothing: results and report from the stages finished so far")
    c.add_argument("--seed", type=int, default=0)
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
    defaults = {}
    for key, val in values.items():
        dest = str(key).replace("-", "_")
        if dest not in dests or dest in ("help", "config"):
            cp.error(f"{path}: unknown option {key!r} for `tea {command}`")
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
    except (FileNotFoundError, ValueError) as e:
        print(f"tea {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


