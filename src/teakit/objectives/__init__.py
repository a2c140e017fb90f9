"""Training objectives: each is a small object that turns a batch into a loss and logs."""
from .heatmap_loss import heatmap_loss

__all__ = ["heatmap_loss"]
