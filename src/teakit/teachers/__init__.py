"""Teachers for TEA: models whose LRP-ε heatmaps a student learns to match.

* :class:`DebiasedTeacher` — a classifier trained on debiased images.
* :class:`SegmenterTeacher` — a segmenter masks the background (filled with
  noise etc.), and a classifier trained on such masked images is explained.

Both derive from :class:`Teacher` and share ``forward(x, generator=None)``,
``heatmap(x, target, eps, generator=None)``, ``heatmap_and_logits(...)`` and
``freeze()``.
"""
from .base import Teacher
from .debiased import DebiasedTeacher
from .segmenter import (
           FILLS,
           HEATMAP_OF,
           SegmenterTeacher,
           dice_bce_loss,
           fill_background,
)

__all__ = ["Teacher", "DebiasedTeacher", "SegmenterTeacher", "dice_bce_loss",
           "fill_background", "FILLS", "HEATMAP_OF"]
