"""Defaults of the TEA recipe that the command line and the demo share (docs/recipe.md).

``HEATMAP_OBJECTIVES``: the `tea distill` objectives trained only by matching
the teacher's heatmaps (TEA, and the same recipe with other explainers).
``HEATMAP_HEAD_LR_SCALE``: the learning-rate multiplier of the student's last
linear layer they get by default.  Heatmaps teach that layer slowly; a 10x
rate gained 1 to 5 points at equal cost in the runs measured.
``CNN_DEPTH``: the depth of the small CNN that the commands and the demo build
unless told otherwise.  Depth 6 (three max-pools; its last features see the
whole 32×32 image) gave TEA students a lower *validation* heatmap loss than
depth 4 on both built-in benchmarks, and 8 points more accuracy on
digits-on-scenes.  ``SmallCNN`` itself keeps depth 4 as its default, so
checkpoints saved before the change (which did not record the depth) still
load as what they are.
``FEATURE_WEIGHT``, ``FEATURE_LAYER``: `tea distill` adds to the input-heatmap
loss the same loss between the student's and the teacher's LRP relevance of
the second-to-last ReLU layer (weight 1).  Still explanations only: no label,
no logit.  With it the digits-on-scenes student went from 89.8 / 89.6 % to
97.2 / 97.4 % (ood / swapped) in 30 epochs, and the *validation* heatmap loss
of the input maps fell on both benchmarks.  It needs a student whose layer has
the teacher's shape and the live teacher (`--feature-weight 0` for the input
maps alone, as in the paper, e.g. with `--cache` or a smaller student).
``STUDENT_INITS``: how `tea distill` draws the student's initial weights
(:func:`teakit.runs.build_student`): ``own`` (default), apart from any teacher's,
or ``shared``, from the run's seed as a teacher built with that seed did.

Kept free of imports so that ``tea --help`` stays fast.
"""
HEATMAP_OBJECTIVES = ("tea", "gradxinput", "inputgrad", "gradcam")
HEATMAP_HEAD_LR_SCALE = 10.0
CNN_DEPTH = 6
FEATURE_WEIGHT = 1.0
FEATURE_LAYER = -2
STUDENT_INITS = ("own", "shared")
