"""What an objective is: a small object that turns a batch into a loss and its logs.

An objective is called as ``objective(batch, student, rng, train=True)`` and
returns ``(loss, logs)``.  ``batch`` is a dict of tensors on the right device
(``x`` (B,C,H,W), ``y`` (B,), ``mask`` (B,1,H,W) bool, ``bias`` (B,),
``index`` (B,) positions in the training set); ``rng`` is a seeded
``torch.Generator`` for whatever the objective draws (classes, ε), so a step is
reproducible from (seed, epoch, step).  ``logs`` maps names to detached
scalars; every objective logs ``acc`` (label accuracy, measured, never
optimised unless the objective is supervised) and, when it has a teacher,
``agreement`` (top-1 agreement with the teacher) and ``kl`` (KL(teacher‖student)
of the softmax outputs).  ``selection_key`` names the log entry used for model
selection on the biased validation set (lower is better).
``before_epoch(epoch, epochs)`` runs before every training epoch's first step
(epoch counted from 0 of ``epochs``; default: nothing; TEA's ``hidden_first``
reads it).  ``after_epoch(student, train_data, device)`` runs after every training epoch,
before validation, and returns logs (default: nothing); TEA uses it to
calibrate the head bias (:mod:`teakit.calibrate`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class Objective:
    name = "objective"
    selection_key = "loss"
    teacher = None
    trains_head = True  # False: the loss never reaches the last linear layer (`tea distill` then copies the teacher's)
    # the student's weight layout while it trains (teakit.train.fit).  Channels-last is faster on CPU for
    # the forward, the backward and teakit.explain's second-order nodes; an objective that differentiates a
    # plain autograd input gradient (RRR, GALS) keeps the contiguous layout, in which PyTorch's own double
    # backward of a convolution is faster
    memory_format = torch.channels_last
    # True: the loss is computed on an explanation (a heatmap or input gradient) and differentiated through it,
    # which half precision does not survive (teakit.train.check_precision: `tea train`, `tea distill`, fit_model)
    explains = False

    def __call__(self, batch: dict, student, rng: torch.Generator, train: bool = True):
        raise NotImplementedError

    def config(self) -> dict:
        """Hyper-parameters, written into the run's config."""
        return {"name": self.name}

    def before_epoch(self, epoch: int, epochs: int) -> None:
        """Called before training epoch ``epoch`` (from 0) of ``epochs``, also after a resume."""

    def after_epoch(self, student, train_data, device) -> dict:
        """Work between an epoch's last step and validation (unwrapped student); returns logs."""
        return {}


def output_logs(logits: torch.Tensor, y: torch.Tensor, teacher_logits: torch.Tensor | None = None) -> dict:
    """Measured (not optimised) agreement numbers for a batch of student logits."""
    logits = logits.detach()
    logs = {"acc": (logits.argmax(1) == y).float().mean()}
    if teacher_logits is not None:
        logs["agreement"] = (logits.argmax(1) == teacher_logits.argmax(1)).float().mean()
        logs["kl"] = F.kl_div(F.log_softmax(logits.float(), 1), F.log_softmax(teacher_logits.float(), 1),
                              log_target=True, reduction="batchmean")
    return logs


def touch_all_parameters(loss: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``loss + 0 * logits.sum()``: same value and gradient, but every parameter used in
    the forward pass now receives a (possibly zero) gradient.

    A heatmap never depends on the last layer's bias, so under a heatmap-only loss
    that parameter would get no gradient at all; DDP then never completes its
    gradient bucket and silently skips the all-reduce (pytorch/pytorch#47562).
    """
    return loss + 0.0 * logits.sum()


def known_masks(memo, batch: dict, train: bool):
    """A segmenter teacher's masks of a training batch from ``memo`` (a
    :class:`~teakit.teachers.segmenter.MaskMemo`, or None), else None (the teacher computes them).
    Pass ``train=False`` for validation batches and for images changed by augmentation."""
    return memo.keep(batch) if memo is not None and train and "index" in batch else None
