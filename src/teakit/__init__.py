"""teakit: Training with Explanations Alone (TEA).

A student classifier is trained only to make its LRP-ε heatmaps match those of a
teacher that already ignores the shortcut.  See DESIGN notes in the README.
"""
from .explain import explain
from .objectives.heatmap_loss import heatmap_loss

__version__ = "0.1.0"
__all__ = ["explain", "heatmap_loss", "__version__"]
