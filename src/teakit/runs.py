"""Run folders: what `tea train`, `tea train-teacher` and `tea distill` leave behind, and
how to load it back.

A classifier run folder holds ``best.json`` / ``last.json`` checkpoints
(:mod:`teakit.checkpoint`) whose config has ``model`` = ``{"name", "num_classes",
"kwargs"}``.  A teacher folder holds ``teacher.json`` (``kind`` = ``debiased`` or
``segmenter``, and the sub-folders of its parts).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
import torch.nn as nn

from .checkpoint import has_checkpoint, load_checkpoint, load_model_state, sha256_state
from .config import CNN_DEPTH, STUDENT_INITS
from .models import build_model


def model_spec(name: str, num_classes: int, **kwargs) -> dict:
    """What a run's config records of its model, enough to rebuild it: ``name``, ``num_classes``
    (None: from the data) and the :func:`teakit.models.build_model` ``kwargs`` -- for the
    torchvision models ``stem`` (``small``/``imagenet``; ``auto`` is resolved from the data's
    image size before training, :func:`teakit.commands._resolve_spec`) and the initial weights
    (``weights``: the file's path, or ``pretrained``).  Configs that recorded ``small_input=True``
    still build the small stem."""
    return {"name": name, "num_classes": num_classes, "kwargs": kwargs}


# the spec kwargs that only give the initial weights: a trained checkpoint replaces them
INITIAL_WEIGHT_KWARGS = ("weights", "pretrained")


def default_spec(num_classes: int | None = None) -> dict:
    """The CNN built when no model is given: the recipe's depth, written into the spec
    (configs saved before it was recorded build ``SmallCNN``'s own default, depth 4)."""
    return model_spec("cnn", num_classes, depth=CNN_DEPTH)


def build_from_spec(spec: dict, initial_weights: bool = True) -> nn.Module:
    """The model of ``spec``; ``initial_weights=False`` leaves out its initial weights (``weights`` file,
    ``pretrained``), for a model whose trained state is loaded next (the file need not exist then)."""
    kwargs = dict(spec.get("kwargs", {}))
    if not initial_weights:
        for key in INITIAL_WEIGHT_KWARGS:
            kwargs.pop(key, None)
    return build_model(spec["name"], spec["num_classes"], **kwargs)


def student_init_seed(seed: int) -> int:
    """The seed of a student's initial weights under ``init="own"``: a digest of ``seed``, far from the
    small seeds teachers are trained with."""
    return int(hashlib.sha256(f"teakit-student-init-{seed}".encode()).hexdigest()[:15], 16)


def build_student(spec: dict, seed: int, init: str = "own") -> nn.Module:
    """A distillation student from ``spec``.

    ``init="own"``: its initial weights are drawn from :func:`student_init_seed` (``seed``), leaving the
    global random state as it was, so a student never starts from the initial weights of a teacher built
    from the same seed.  That matters: a teacher's trained head stays close to its initial one (cosine
    0.93 in the demo), so a student that shared it and never trained its own head (feature distillation)
    classified well by accident.  ``init="shared"``: drawn from the global random state, as it stands
    (what `tea distill` did before; the teacher's initial weights when both were seeded alike)."""
    if init not in STUDENT_INITS:
        raise ValueError(f"student init {init!r}: expected one of {', '.join(STUDENT_INITS)}")
    if init == "shared":
        return build_from_spec(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(student_init_seed(seed))
        return build_from_spec(spec)


def load_model(run_dir, which: str = "best") -> tuple[nn.Module, dict]:
    """The model saved in a run folder (its ``which`` checkpoint) and the run's config."""
    run_dir = Path(run_dir)
    if not has_checkpoint(run_dir, which):
        raise FileNotFoundError(f"{run_dir}: no '{which}' checkpoint (expected {run_dir / (which + '.json')}); "
                                "is this a finished tea run folder?")
    ck = load_checkpoint(run_dir, which)
    if "model" not in ck.config:
        raise ValueError(f"{run_dir / (which + '.json')}: config has no 'model' entry")
    model = build_from_spec(ck.config["model"], initial_weights=False)  # the checkpoint holds the weights
    load_model_state(model, ck.model_state)
    return model.eval(), ck.config


def write_teacher(out_dir, kind: str, **parts) -> Path:
    path = Path(out_dir) / "teacher.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"kind": kind, **parts}, indent=2) + "\n")
    return path


def load_teacher(teacher_dir, heatmap_of: str | None = None):
    """A frozen teacher from a `tea train-teacher` folder (or a plain classifier run folder,
    which is taken as a debiased teacher).  ``heatmap_of`` (segmenter teachers: ``"masked"``
    or ``"input"``, see :class:`~teakit.teachers.SegmenterTeacher`) overrides the folder's
    setting; a teacher without a fill has one heatmap and ignores it.  A segmenter teacher's
    ``fills`` is the folder's (a folder written before it was recorded: 1, the one draw it was
    evaluated with then)."""
    from .teachers import DebiasedTeacher, SegmenterTeacher

    teacher_dir = Path(teacher_dir)
    meta_path = teacher_dir / "teacher.json"
    if not meta_path.exists():
        if has_checkpoint(teacher_dir, "best"):
            classifier, _ = load_model(teacher_dir)
            return DebiasedTeacher(classifier).freeze()
        raise FileNotFoundError(f"{teacher_dir}: not a teacher folder (no teacher.json and no best.json); "
                                "make one with `tea train-teacher`")
    meta = json.loads(meta_path.read_text())
    classifier, _ = load_model(teacher_dir / meta["classifier"])
    if meta["kind"] == "debiased":
        return DebiasedTeacher(classifier).freeze()
    if meta["kind"] == "segmenter":
        segmenter, _ = load_model(teacher_dir / meta["segmenter"])
        return SegmenterTeacher(segmenter, classifier, threshold=meta.get("threshold", 0.5),
                                fill=meta.get("fill", "noise"), fills=meta.get("fills", 1),
                                heatmap_of=heatmap_of or meta.get("heatmap_of", "input")).freeze()
    raise ValueError(f"{meta_path}: unknown teacher kind {meta['kind']!r}")


def teacher_hash(teacher: nn.Module) -> str:
    return sha256_state({k: v for k, v in teacher.state_dict().items()})


EVAL_LOGITS_KIND = 1  # raise when what teacher_eval_logits keeps changes meaning
PRIOR_KIND = 1  # raise when what teacher_prior_keeper keeps changes meaning


def kept_tensor(folder, key: dict, compute, valid=None, name: str = "value") -> torch.Tensor:
    """``compute()`` (a tensor), kept in ``folder`` as ``<hash of key>.safetensors`` (the tensor called
    ``name``) and read back from there by any later call with the same ``key`` (a JSON-able dict) whose
    file holds a tensor that ``valid`` accepts.  A file that cannot be read is computed again; a folder
    that cannot be written only loses the keeping."""
    from safetensors.torch import load, save

    from .atomic import atomic_write_bytes

    path = Path(folder) / f"{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]}.safetensors"
    try:
        value = load(path.read_bytes())[name]
        if valid is None or valid(value):
            return value
    except Exception:  # missing, truncated or foreign: computed below
        pass
    value = compute()
    try:
        path.parent.mkdir(exist_ok=True)
        atomic_write_bytes(path, save({name: value.contiguous()}), tag=f".{os.getpid()}")
    except OSError:
        pass
    return value


def teacher_eval_logits(teacher, teacher_dir, data, digest: str) -> torch.Tensor:
    """The teacher's logits on ``data`` as evaluation computes them (:func:`teakit.evaluate.predict`: a
    segmenter teacher's fill seeded per image), kept in ``teacher_dir/eval-logits/``
    (:func:`kept_tensor`), so that the students of one teacher are all evaluated against predictions
    computed once.  ``digest``: :func:`teacher_hash` of ``teacher``.  The file is named by a hash of the
    teacher's weights, its ``decision_config()`` (a segmenter teacher's fills), the data's fingerprint, the
    evaluation seed and :data:`EVAL_LOGITS_KIND`: logits for other weights or data are never read back."""
    from .evaluate import EVAL_SEED, predict

    key = {"teacher_hash": digest, "decision": teacher.decision_config(), "data": data.fingerprint(),
           "eval_seed": EVAL_SEED, "kind": EVAL_LOGITS_KIND}
    return kept_tensor(Path(teacher_dir) / "eval-logits", key, lambda: predict(teacher, data.x),
                       valid=lambda t: t.dim() == 2 and len(t) == len(data), name="logits")


def teacher_prior_keeper(teacher, teacher_dir, digest: str):
    """A ``keep_prior`` for :class:`~teakit.objectives.tea.TEA`: its class prior from the teacher on the
    training images (``bias_prior`` ``teacher`` or ``teacher-decisions``; with a 16-draw segmenter teacher
    16 classifier passes over them) kept in ``teacher_dir/priors/`` (:func:`kept_tensor`), named by a hash
    of the teacher's weights (``digest``), its ``decision_config()``, the prior's kind, the images'
    fingerprint and :data:`PRIOR_KIND`; so the students of one teacher compute it once."""
    def keep(kind: str, data, compute) -> torch.Tensor:
        key = {"teacher_hash": digest, "decision": teacher.decision_config(), "data": data.fingerprint(),
               "prior": kind, "kind": PRIOR_KIND}
        return kept_tensor(Path(teacher_dir) / "priors", key, compute, valid=lambda t: t.dim() == 1)
    return keep


def teacher_split_logits(teacher, teacher_dir, splits: dict, digest: str) -> dict:
    """:func:`teacher_eval_logits` of every non-empty split of ``splits`` (name to data), by name: what
    :func:`teakit.evaluate.evaluate_splits` takes as ``teacher_logits``."""
    return {name: teacher_eval_logits(teacher, teacher_dir, data, digest) for name, data in splits.items() if len(data)}


def load_evaluand(model_dir, which: str = "best"):
    """``(model, config, kind)`` of anything `tea evaluate` takes: a `tea train` /
    `tea distill` run folder (its ``which`` checkpoint; ``kind`` ``"run"``) or a
    `tea train-teacher` folder (``kind`` = the teacher's: ``"segmenter"``: the whole
    :class:`~teakit.teachers.SegmenterTeacher` -- segmenter, fill and classifier;
    ``"debiased"``: its classifier).  ``config`` is the run's, for a teacher its
    classifier's (dataset, data seed and options), with the teacher's dataset."""
    model_dir = Path(model_dir)
    meta_path = model_dir / "teacher.json"
    if meta_path.is_file():
        if which != "best":
            raise ValueError(f"{model_dir} is a teacher folder, used by its 'best' checkpoints; --checkpoint "
                             f"{which} applies to run folders (e.g. {model_dir / 'classifier'})")
        meta = json.loads(meta_path.read_text())
        teacher = load_teacher(model_dir)
        config = dict(load_checkpoint(model_dir / meta["classifier"], "best").config)
        config["dataset"] = meta.get("dataset") or config.get("dataset")
        model = teacher.classifier.eval() if meta["kind"] == "debiased" else teacher
        return model, config, meta["kind"]
    if not has_checkpoint(model_dir, which):
        raise FileNotFoundError(f"{model_dir}: neither a run folder (no '{which}' checkpoint "
                                f"{model_dir / (which + '.json')}) nor a teacher folder (no {meta_path.name}); "
                                "give a `tea train` / `tea distill` / `tea train-teacher` output folder")
    model, config = load_model(model_dir, which)
    if config.get("model", {}).get("name") == "unet":
        raise ValueError(f"{model_dir} holds a segmenter (U-Net), not a classifier: evaluate the teacher "
                         f"folder it belongs to (e.g. {model_dir.parent})")
    return model, config, "run"
