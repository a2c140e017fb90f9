"""The `tea` commands as Python functions: train a teacher, train or distill a
student, evaluate it.  The CLI (:mod:`teakit.cli`) and the demo call these.

Each training function builds a Lightning Fabric from ``fabric`` (a dict of
``accelerator``, ``devices``, ``strategy``, ``precision``), seeds everything,
and runs :func:`teakit.train.fit` inside ``fabric.launch`` so the same code
runs on one CPU or on several GPUs/processes.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .config import (
    CLASSIFIER_MASKS,
    SEGMENTER_BACKGROUNDS,
    SEGMENTER_UNET,
    STUDENT_INITS,
    TEACHER_CLASSIFIER,
    TEACHER_FILL,
    TEACHER_FILLS,
    distill_config,
)
from .data.load import (  # noqa: F401 (re-exported)
    BIAS_IS_GROUP,
    DISK_OPTIONS,
    TRAINING_SPLITS,
    load_data,
    num_classes_of,
    read_disk_dataset,
)
from .data.names import DISK_DATASETS
from .runs import (
    build_from_spec,
    build_student,
    default_spec,
    load_evaluand,  # noqa: F401 (re-exported)
    load_model,
    load_teacher,
    model_spec,
    teacher_hash,
    teacher_prior_keeper,
    teacher_split_logits,
    write_teacher,
)
from .train import (  # noqa: F401  (make_fabric re-exported)
    DEFAULT_FABRIC,
    TrainConfig,
    check_precision,
    fit,
    make_fabric,
)


def _resolve_spec(spec: dict | None, data: dict) -> dict:
    """The model spec (by default :func:`teakit.runs.default_spec`) with ``num_classes``
    filled in from the data when it is None, and ``stem="auto"`` resolved from the data's
    image side (:func:`teakit.models.resolve_stem`: the small stem up to 32 px), so that the
    run's config records the stem built."""
    spec = dict(spec) if spec else default_spec()
    if spec["num_classes"] is None:
        spec["num_classes"] = 1 if spec["name"] == "unet" else num_classes_of(data)
    kwargs = spec.get("kwargs") or {}
    if kwargs.get("stem") == "auto":
        from .models import resolve_stem
        side = max(max(d.x.shape[-2:]) for d in data.values())
        spec["kwargs"] = {**kwargs, "stem": resolve_stem("auto", side)}
    return spec


def _launch(fabric_kw: dict | None, fn, *args):
    return make_fabric(fabric_kw).launch(fn, *args)


def _fit_model(fabric, spec, objective, train_data, val_data, cfg, out, run_config, resume, progress):
    fabric.seed_everything(cfg.seed, verbose=False)
    model = build_from_spec(spec)
    run_config = dict(run_config, model=spec)
    return fit(fabric, model, objective, train_data, val_data, cfg, out, run_config=run_config,
               resume=resume, progress=progress)


def train(dataset: str, objective: str, out, *, spec: dict | None = None, cfg: TrainConfig | None = None,
          split: str = "train", fill: str | None = None, data_seed: int = 0, data_options: dict | None = None,
          objective_options: dict | None = None, stage1=None, fabric: dict | None = None, resume: bool = False,
          progress: bool = True) -> dict:
    """`tea train`: an objective that needs no teacher — ``erm``, ``segmentation`` (the
    segmenter teacher's U-Net) or a registered baseline (``rrr``, ``isnet``, ``gain``, ``pgi``, ``gals``,
    ``groupdro``, ``irm``, ``jtt`` with ``stage1`` = an ERM run folder)."""
    from .objectives.erm import ERM
    from .objectives.registry import OBJECTIVES, build_objective
    from .objectives.segmentation import Segmentation

    cfg = cfg or TrainConfig()
    check_precision(objective, objective in OBJECTIVES and OBJECTIVES[objective].cls.explains, fabric)
    data = load_data(dataset, data_seed, **(data_options or {}))
    if objective == "segmentation":
        spec = spec or model_spec("unet", 1, **SEGMENTER_UNET)
        if spec["name"] != "unet":
            raise ValueError(f"objective segmentation trains a U-Net; got a {spec['name']!r} model")
    spec = _resolve_spec(spec, data)
    K = spec["num_classes"]
    if objective == "segmentation":
        obj = Segmentation(**(objective_options or {}))
    elif objective == "erm":
        obj = ERM(fill=fill, **(objective_options or {}))
    elif objective in OBJECTIVES and not OBJECTIVES[objective].needs_teacher:
        kw = dict(objective_options or {})
        if objective == "jtt":
            from .objectives.jtt import error_set
            if stage1 is None:
                raise ValueError("objective jtt needs stage1: an ERM run folder whose mistakes are up-weighted")
            kw["error_set"] = error_set(load_model(stage1)[0], data[split])
        if objective == "groupdro":
            from .objectives.group_dro import GroupDRO
            obj = GroupDRO(**{**kw, **_groupdro_groups(dataset, data, K, kw)})
        elif objective == "irm" and dataset in BIAS_IS_GROUP and "bias_per_class" not in kw:
            # the bias attribute is the group y·P + e: IRM's environments are the e (e.g. the place)
            groups = _bias_values(dataset, data, "IRM")
            obj = build_objective(objective, num_classes=K, bias_per_class=max(1, groups // K), **kw)
        else:
            obj = build_objective(objective, num_classes=K, **kw)
    else:
        raise ValueError(f"objective={objective!r}: `tea train` runs objectives without a teacher; "
                         "distillation objectives (tea, kd, …) are `tea distill --objective`")
    run_config = {"dataset": dataset, "data_seed": data_seed, "data_options": data_options or {},
                  "split": split, "command": "train"}

    def main(fab):
        return _fit_model(fab, spec, obj, data[split], data["val"], cfg, out, run_config, resume, progress)
    return _launch(fabric, main)


def _groupdro_groups(dataset: str, data: dict, num_classes: int, kw: dict) -> dict:
    """GroupDRO's grouping for a dataset: the bias attribute itself where it already is
    the group (Waterbirds, COCO-on-Places, folder), else (label, bias) pairs
    (:func:`teakit.objectives.group_dro.group_options` decides)."""
    from .objectives.group_dro import group_options

    return group_options(num_classes, _bias_values(dataset, data, "GroupDRO"), dataset in BIAS_IS_GROUP, **kw)


def _bias_values(dataset: str, data: dict, method: str) -> int:
    """How many bias values (groups) the train and val splits use: the largest + 1; ``method`` needs one
    for every image."""
    biases = torch.cat([d.bias for name, d in data.items() if name in ("train", "val")])
    if (biases < 0).any():
        raise ValueError(f"{dataset}: {method} needs a group for every train/val image (found -1: none)")
    return int(biases.max()) + 1


def train_teacher(dataset: str, kind: str, out, *, spec: dict | None = None, cfg: TrainConfig | None = None,
                  seg_cfg: TrainConfig | None = None, fill: str = TEACHER_FILL, fills: int = TEACHER_FILLS,
                  heatmap_of: str = "input",
                  seg_backgrounds: dict | None = None, seg_unet: dict | None = None,
                  classifier_masks: dict | None = None, data_seed: int = 0,
                  data_options: dict | None = None, fabric: dict | None = None, progress: bool = True) -> Path:
    """`tea train-teacher`: ``debiased`` (a classifier on the shortcut-free training
    variant) or ``segmenter`` (a U-Net on the masks, its training images on new backgrounds as
    ``seg_backgrounds`` says: the :class:`~teakit.objectives.segmentation.Segmentation` options
    ``paste``, ``swap``, ``synthetic`` and ``recolour``, over :data:`~teakit.config.SEGMENTER_BACKGROUNDS`; its
    size as ``seg_unet`` says, ``base`` and ``depth`` over :data:`~teakit.config.SEGMENTER_UNET`); then a
    classifier on masked images whose background is ``fill``-ed (its logits averaged over ``fills``
    draws of a noise fill, see :class:`~teakit.teachers.SegmenterTeacher`), as ``classifier_masks`` says over
    :data:`~teakit.config.TEACHER_CLASSIFIER`: ``masks`` ``"true"`` or ``"segmenter"`` (the U-Net's own),
    ``swap`` and ``recolour`` as for the U-Net (:class:`~teakit.objectives.erm.ERM`); ``heatmap_of``
    is recorded in the folder, see :class:`~teakit.teachers.SegmenterTeacher`)."""
    out = Path(out)
    common = dict(data_seed=data_seed, data_options=data_options, fabric=fabric, progress=progress)
    if kind == "debiased":
        if dataset in DISK_DATASETS and dataset != "colored-mnist":
            raise ValueError(f"{dataset} has no shortcut-free training variant for a debiased teacher; "
                             "use --kind segmenter (it needs masks)")
        train(dataset, "erm", out / "classifier", spec=spec, cfg=cfg, split="train_debiased", **common)
        return write_teacher(out, "debiased", classifier="classifier", dataset=dataset)
    if kind == "segmenter":
        for name, given, known in (("seg_backgrounds", seg_backgrounds, SEGMENTER_BACKGROUNDS),
                                   ("seg_unet", seg_unet, SEGMENTER_UNET),
                                   ("classifier_masks", classifier_masks, TEACHER_CLASSIFIER)):
            unknown = sorted(set(given or {}) - set(known))
            if unknown:
                raise ValueError(f"{name}: unknown option(s) {', '.join(unknown)}; expected {', '.join(known)}")
        cls = {**TEACHER_CLASSIFIER, **(classifier_masks or {})}
        masks = cls.pop("masks")
        if masks not in CLASSIFIER_MASKS:
            raise ValueError(f"classifier_masks: masks={masks!r}; expected one of {', '.join(CLASSIFIER_MASKS)}")
        if masks == "true" and (cls["swap"] or cls["recolour"]):
            raise ValueError("classifier_masks: swap and recolour (--cls-swap, --cls-recolour) need masks='segmenter' "
                             "(--cls-masks segmenter): the true mask fills every pixel they change")
        unet = model_spec("unet", 1, **{**SEGMENTER_UNET, **(seg_unet or {})})
        train(dataset, "segmentation", out / "segmenter", spec=unet, cfg=seg_cfg or cfg, split="train",
              objective_options={**SEGMENTER_BACKGROUNDS, **(seg_backgrounds or {})}, **common)
        if masks == "segmenter":
            cls["segmenter"] = load_model(out / "segmenter")[0]
        train(dataset, "erm", out / "classifier", spec=spec, cfg=cfg, split="train", fill=fill,
              objective_options=cls, **common)
        return write_teacher(out, "segmenter", classifier="classifier", segmenter="segmenter",
                             fill=fill, fills=fills if fill == "noise" else 1, threshold=0.5, heatmap_of=heatmap_of,
                             dataset=dataset)
    raise ValueError(f"kind={kind!r}; expected 'debiased' or 'segmenter'")


CACHE_BATCH_BYTES = 64 * 2 ** 20  # the float32 maps one teacher pass of a cache build holds at most


def cache_images_per_batch(per_image: int, image_numel: int, budget: int = CACHE_BATCH_BYTES) -> int:
    """Images per teacher pass when building the heatmap cache: as many as keep their ``per_image`` float32
    maps of ``image_numel`` values within ``budget`` bytes, between 1 and 64 (64 32×32 images a pass build
    the cache about a quarter faster than 8 on a CPU core; docs/results.md)."""
    return max(1, min(64, budget // (4 * per_image * image_numel)))


def teacher_cache(teacher, data, cache_dir, eps_values, fabric=None, progress=True):
    """Open (building it first if needed) the teacher-heatmap cache for ``data``.

    Returns the cache and the teacher's logits on ``data`` (for class choice and
    agreement).  A cache built for another teacher or dataset is refused, not used.
    """
    from .models import get_head
    from .teachers.cache import HeatmapCache, build_cache, finalize_cache

    cache_dir = Path(cache_dir)
    K = get_head(teacher.classifier).out_features
    expected = {"teacher_hash": teacher_hash(teacher), "dataset_fingerprint": data.fingerprint(),
                "teacher_maps": teacher.map_config(),
                "eps_values": list(eps_values), "shape": [len(data), K, len(eps_values),
                                                          *data.x.shape[1:]]}
    manifest = {k: expected[k] for k in ("teacher_hash", "dataset_fingerprint", "teacher_maps")}
    rank, world = (fabric.global_rank, fabric.world_size) if fabric is not None else (0, 1)
    if not (cache_dir / "manifest.json").exists():
        gen = torch.Generator().manual_seed(12345)  # the segmenter teacher's noise fill: fixed per cache
        per_image = K * len(eps_values)
        order = (torch.arange(K).repeat_interleave(len(eps_values)), torch.tensor(eps_values).repeat(K))

        def heatmap_fn(x, target, eps):
            # batches hold whole images, rows (image, class, ε) in that order: one forward per image
            n = len(x) // per_image
            if len(x) % per_image or not (torch.equal(target.cpu(), order[0].repeat(n))
                                          and torch.allclose(eps.cpu(), order[1].repeat(n))):
                raise RuntimeError("teacher_cache: build_cache split an image's (class, ε) rows")
            maps = teacher.heatmaps_all(x[::per_image], K, eps_values, generator=gen)
            return maps.flatten(0, 2)
        images = data.x if torch.is_tensor(data.x) else data.x[:]  # lazy images: decoded once, here
        n = cache_images_per_batch(per_image, images[0].numel(), CACHE_BATCH_BYTES)
        build_cache(cache_dir, heatmap_fn, images, K, list(eps_values), manifest, batch_size=n * per_image,
                    rank=rank, world_size=world, progress=progress and rank == 0)
        if world > 1:
            fabric.barrier()
            if rank == 0:
                finalize_cache(cache_dir, world_size=world)
            fabric.barrier()
    cache = HeatmapCache.open(cache_dir, expected)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(12345)
        logits = torch.cat([teacher(data.x[i:i + 256], generator=gen) for i in range(0, len(data), 256)])
    return cache, logits


def distill(dataset: str, teacher_dir, out, *, spec: dict | None = None, cfg: TrainConfig | None = None,
            tea: dict | None = None, copy_head: bool | None = None, cache: bool = False, cache_dir=None,
            eps_values=None, data_seed: int = 0, data_options: dict | None = None, fabric: dict | None = None,
            resume: bool = False, progress: bool = True, objective: str = "tea", on_epoch=None,
            teacher_heatmap: str | None = None, student_init: str = "own") -> dict:
    """`tea distill`: train a student from a teacher folder with TEA (default) or another
    distillation objective of the registry (``kd``, ``feature``, ``attention``,
    ``gradxinput``, ``inputgrad``, ``gradcam``); ``tea`` holds the objective's options;
    ``teacher_heatmap`` (``masked``/``input``) overrides a segmenter teacher's heatmap
    setting (:func:`teakit.runs.load_teacher`); ``on_epoch`` is passed to
    :func:`teakit.train.fit`.  ``copy_head``: give the student the teacher's head, frozen (default: when
    the objective's loss cannot train a head, i.e. feature distillation and attention transfer).
    ``student_init``: ``own`` (default) draws the student's initial weights apart from the teacher's,
    ``shared`` from the global random state after seeding, as before (:func:`teakit.runs.build_student`)."""
    from .objectives.registry import OBJECTIVES, build_objective, distill_objectives
    from .objectives.tea import TEA

    if objective not in distill_objectives():
        raise ValueError(f"objective={objective!r}: `tea distill` runs objectives with a teacher: "
                         + ", ".join(distill_objectives()))
    if student_init not in STUDENT_INITS:
        raise ValueError(f"student_init={student_init!r}: expected one of {', '.join(STUDENT_INITS)}")
    check_precision(objective, OBJECTIVES[objective].cls.explains, fabric)
    if copy_head is None:
        copy_head = not OBJECTIVES[objective].cls.trains_head
    if cache and objective != "tea":
        raise ValueError("--cache holds LRP-ε maps: it serves the tea objective only")
    if cache and (tea or {}).get("feature_weight"):
        raise ValueError("--cache holds the teacher's input maps only, and --feature-weight (hidden-layer relevance, "
                         "default 1) needs the live teacher: drop --cache, or pass --feature-weight 0")
    from .teachers.cache import eps_grid

    teacher = load_teacher(teacher_dir, heatmap_of=teacher_heatmap)
    cfg = cfg or distill_config(objective)
    tea = dict(tea or {})
    data = load_data(dataset, data_seed, **(data_options or {}))
    spec = _resolve_spec(spec, data)
    K = spec["num_classes"]
    eps_values = list(eps_values or eps_grid())
    if cache and cache_dir is None:
        maps = teacher.map_config().get("heatmap_of", "")  # one cache per kind of teacher map
        cache_dir = (Path(teacher_dir) / "cache" / f"{dataset}-{data['train'].fingerprint()[:12]}"
                     f"{'-' + maps if maps and maps != 'masked' else ''}")
    run_config = {"dataset": dataset, "data_seed": data_seed, "data_options": data_options or {},
                  "command": "distill", "teacher": str(teacher_dir), "teacher_hash": teacher_hash(teacher),
                  "copy_head": copy_head, "student_init": student_init,
                  "cache": str(cache_dir) if cache else None, "objective": objective,
                  "teacher_maps": teacher.map_config()}

    def main(fab):
        fab.seed_everything(cfg.seed, verbose=False)
        t = teacher.to(fab.device)
        student = distill_student(spec, cfg.seed, t, copy_head, student_init)
        c, c_logits = (teacher_cache(t, data["train"], cache_dir, eps_values, fab, progress)
                       if cache else (None, None))
        options = dict(tea)
        if issubclass(OBJECTIVES[objective].cls, TEA):  # its class prior, kept in the teacher folder
            options["keep_prior"] = teacher_prior_keeper(t, teacher_dir, run_config["teacher_hash"])
        if objective == "tea":
            obj = TEA(t, K, cache=c, cache_logits=c_logits, **options)
        else:
            obj = build_objective(objective, teacher=t, num_classes=K, **options)
        rc = dict(run_config, model=spec)
        return fit(fab, student, obj, data["train"], data["val"], cfg, out, run_config=rc,
                   resume=resume, progress=progress, on_epoch=on_epoch)
    return _launch(fabric, main)


def distill_student(spec: dict, seed: int, teacher, copy_head: bool, init: str = "own"):
    """`tea distill`'s student (:func:`teakit.runs.build_student`); ``copy_head``: with the teacher
    classifier's head, frozen (the objectives that cannot train a head)."""
    from .models import get_head
    student = build_student(spec, seed, init)
    if copy_head:
        s_head, t_head = get_head(student), get_head(teacher.classifier)
        if s_head.weight.shape != t_head.weight.shape:
            raise ValueError(f"--copy-head needs equal feature width: student head {tuple(s_head.weight.shape)}"
                             f", teacher head {tuple(t_head.weight.shape)}")
        s_head.load_state_dict(t_head.state_dict())
        s_head.requires_grad_(False)
    return student


# the data options `tea evaluate` may change (default: what the run was trained with)
EVAL_DATA_OPTIONS = ("data_root", "size", "color", "normalize", "class_names", "lazy", "external_sources", "limit")


def evaluation_data_options(dataset: str, recorded: dict | None, overrides: dict | None = None) -> dict:
    """The data options of an evaluation: those the run was trained with (``recorded``),
    each replaced where ``overrides`` gives it (keys of ``EVAL_DATA_OPTIONS``; None: not
    given; ``limit`` 0: every image).  Options for datasets on disk are refused for a
    built-in ``dataset``, ``external_sources`` for any but ``xray``."""
    options = dict(recorded or {})
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(overrides) - set(EVAL_DATA_OPTIONS))
    if unknown:
        raise ValueError(f"data option(s) {', '.join(unknown)}: expected some of {', '.join(EVAL_DATA_OPTIONS)}")
    for key, value in overrides.items():
        flag = "--" + key.replace("_", "-")
        if dataset not in DISK_DATASETS and key != "limit" and value is not False:
            raise ValueError(f"{flag}: for datasets on disk ({', '.join(DISK_DATASETS)}), not {dataset}")
        if key == "external_sources" and value and dataset != "xray":
            raise ValueError(f"{flag}: for xray, not {dataset}")
        if key == "limit" and value == 0:
            options.pop("limit", None)
        else:
            options[key] = list(value) if key == "external_sources" else value
    return options


def evaluate_run(dataset: str | None, model_dir, json_path=None, *, data_options: dict | None = None,
                 data_overrides: dict | None = None, data_seed: int | None = None,
                 which: str = "best", relevance: bool = True) -> dict:
    """`tea evaluate`: accuracy (and agreement with the teacher, for distilled
    students; background relevance where masks exist; per-source accuracy and AUC
    where the data have sources, e.g. ``xray`` with its ``external`` split) on every
    test split.

    ``model_dir``: a run folder or a teacher folder (:func:`load_evaluand`).  The data
    are read as the run was trained (its config's ``data_seed`` and ``data_options``),
    or with ``data_options`` instead when given; ``data_overrides`` replaces single
    options (:func:`evaluation_data_options`: e.g. ``data_root`` for another copy or
    another test set of the same layout) and ``data_seed`` the seed.  A segmenter
    teacher's noise fill is seeded per image (:mod:`teakit.evaluate`): evaluating
    twice gives the same numbers.  The result records the data options used."""
    from .evaluate import evaluate_splits
    from .models import get_head
    from .teachers import Teacher

    model, config, kind = load_evaluand(model_dir, which)
    dataset = dataset or config.get("dataset")
    if config.get("dataset") and dataset != config["dataset"]:
        raise ValueError(f"{model_dir} was trained on {config['dataset']!r}, not {dataset!r}")
    options = evaluation_data_options(dataset, data_options or config.get("data_options"), data_overrides)
    seed = config.get("data_seed", 0) if data_seed is None else data_seed
    data, info = load_data(dataset, seed, with_info=True, **options)
    teacher = load_teacher(config["teacher"]) if config.get("teacher") else None
    digest = teacher_hash(teacher) if teacher is not None else None
    if teacher is not None and config.get("teacher_hash") and digest != config["teacher_hash"]:
        raise ValueError(f"the teacher in {config['teacher']} changed since {model_dir} was distilled from it")
    tests = {s: d for s, d in data.items() if s not in TRAINING_SPLITS}
    teacher_logits = teacher_split_logits(teacher, config["teacher"], tests, digest) if teacher is not None else None
    try:
        outputs = get_head(model.classifier if isinstance(model, Teacher) else model).out_features
    except TypeError:  # a model without a recognisable head: no check
        outputs = None
    labels = max((int(d.y.max()) + 1 for d in tests.values() if len(d)), default=0)
    if outputs is not None and labels > outputs:
        where = options.get("data_root") or dataset
        raise ValueError(f"{where}: test labels go up to {labels - 1}, but {model_dir} predicts {outputs} classes; "
                         "evaluate on data with the classes the run was trained on")
    sources = {s: v for s, v in info.get("sources", {}).items() if s in tests}
    result = evaluate_splits(model, tests, teacher=teacher, relevance=relevance, train_groups=data["train"].bias,
                             sources=sources or None, teacher_logits=teacher_logits)
    result.update({"dataset": dataset, "model": str(model_dir), "checkpoint": which, "kind": kind,
                   "data_seed": seed, "data_options": options})
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    return result
