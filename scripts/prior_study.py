"""Which class prior should TEA's head-bias calibration use?  Measured after training, exactly.

A TEA student's weights do not depend on the prior: the heatmaps, and so the loss, never depend on the
head's bias, and the calibration sets that bias from the weights alone.  So one trained student, re-
calibrated to each prior, is the student that training with that prior would have given.  The
biased validation set's agreement with the teacher (no labels) is the figure to choose by; the
test splits are printed beside it and must not be.  Priors:
uniform, none (the bias as initialised: heatmaps never move it), teacher (the teacher's mean prediction on the
unlabelled training images) and the true training class frequencies (an oracle: labels).

    python scripts/prior_study.py RUN_DIR [--checkpoint best] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import copy
import json

import torch

from teakit.calibrate import calibrate_to_prior, teacher_prior
from teakit.data.load import TRAINING_SPLITS, load_data
from teakit.evaluate import evaluate_splits
from teakit.models import get_head
from teakit.runs import build_student, load_model, load_teacher


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("--checkpoint", default="best")
    p.add_argument("--json")
    a = p.parse_args()
    model, config = load_model(a.run, a.checkpoint)
    data = load_data(config["dataset"], config.get("data_seed", 0), **config.get("data_options", {}))
    teacher = load_teacher(config["teacher"])
    train = data["train"]
    priors = {"uniform": "uniform", "teacher": teacher_prior(teacher, train, "cpu"),
              "oracle (train labels)": (torch.bincount(train.y) / len(train)).double()}
    # the biased validation set first: its agreement with the teacher (no labels) is what a choice may use;
    # the test splits are reported, never chosen on
    tests = {"val": data["val"], **{s: d for s, d in data.items() if s not in TRAINING_SPLITS}}
    # "none": the head's bias as initialised (heatmaps never move it)
    initial = get_head(build_student(config["model"], config["train"]["seed"], config.get("student_init", "own")))
    rows = {}
    for name, prior in {"none (initial bias)": None, **priors}.items():
        student = copy.deepcopy(model)
        with torch.no_grad():
            get_head(student).bias.copy_(initial.bias)
        if prior is not None:
            calibrate_to_prior(student, train, "cpu", prior)
        rows[name] = evaluate_splits(student.eval(), tests, teacher=teacher, relevance=False,
                                     train_groups=train.bias)
    print(f"prior of the teacher: {[round(v, 3) for v in priors['teacher'].tolist()]}, "
          f"of the training labels: {[round(v, 3) for v in priors['oracle (train labels)'].tolist()]}")
    keys = ("accuracy", "worst_group_accuracy", "adjusted_average_accuracy", "agreement_with_teacher")
    print("| prior | split | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for name, res in rows.items():
        for split, r in res["splits"].items():
            print(f"| {name} | {split} | " + " | ".join(f"{100 * r[k]:.1f}" if isinstance(r.get(k), float) else "–"
                                                       for k in keys) + " |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({k: v["splits"] for k, v in rows.items()}, f, indent=1)


if __name__ == "__main__":
    main()
