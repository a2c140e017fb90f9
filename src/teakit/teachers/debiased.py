"""DebiasedTeacher: a classifier trained on debiased images, used as a TEA teacher as is.

The classifier sees the input unchanged; its heatmaps are assumed to ignore
the shortcut because it was trained on data without it.  The ``generator``
argument of ``forward``/``heatmap``/``heatmap_and_logits`` is accepted (same
signatures as :class:`~teakit.teachers.segmenter.SegmenterTeacher`) and unused.
"""
from __future__ import annotations

import torch.nn as nn

from .base import Teacher


class DebiasedTeacher(Teacher):
    """``DebiasedTeacher(classifier).freeze()``: logits and LRP-ε heatmaps of ``classifier``."""

    def __init__(self, classifier: nn.Module):
        super().__init__(classifier)
