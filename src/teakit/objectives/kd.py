"""KD: Hinton et al. (2015) logit distillation from the frozen teacher, no labels.

Loss: ``KL(softmax(t/T) ‖ softmax(s/T)) · T²`` (batch mean), with ``s`` the
student's logits on ``x`` and ``t`` the teacher's logits (the teacher sees its
own :meth:`~teakit.teachers.Teacher.classifier_input`).  Hyper-parameter:
``temperature`` T = 3.0 (Hinton et al. use T in the range 1–20; 3 is the
value TEA's optional ``kd_weight`` term uses).  The T² factor keeps gradient
magnitudes comparable across temperatures (Hinton et al., §2).  Unlike the
paper's recipe there is no cross-entropy on the labels: like TEA, this
baseline learns from the teacher alone.  Assumes a frozen teacher whose
logits have the student's number of classes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..teachers.segmenter import MaskMemo
from .base import Objective, known_masks, output_logs


def kd_loss(student_logits, teacher_logits, temperature: float = 3.0):
    """KL(softmax(t/T) ‖ softmax(s/T)) · T², the batch mean."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                    log_target=True, reduction="batchmean") * t * t


class KD(Objective):
    name = "kd"
    selection_key = "loss"

    def __init__(self, teacher, temperature: float = 3.0):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.teacher = teacher
        self.masks = MaskMemo.of(teacher)  # the segmenter runs once per training image
        self.temperature = float(temperature)

    def config(self) -> dict:
        return {"name": self.name, "temperature": self.temperature}

    def __call__(self, batch, student, rng, train=True):
        x, y = batch["x"], batch["y"]
        keep = known_masks(self.masks, batch, train)
        with torch.no_grad():
            t_logits = self.teacher(x, generator=rng, keep=keep, fills=1)  # one draw a step, as TEA's maps
        logits = student(x)
        if logits.shape != t_logits.shape:
            raise ValueError(f"student logits {tuple(logits.shape)} and teacher logits "
                             f"{tuple(t_logits.shape)} differ in shape")
        loss = kd_loss(logits, t_logits, self.temperature)
        return loss, {"loss": loss.detach(), **output_logs(logits, y, t_logits)}
