"""SmallCNN: a plain ReLU convolutional classifier for small (≈32×32) images.

Layout: ``depth`` conv blocks (3×3 conv, padding 1 → BatchNorm (optional) →
ReLU), with a 2×2 max-pool after every second block; block ``i`` has
``min(width·2**i, 8·width)`` channels.  Then adaptive average pooling to 1×1
and a final ``nn.Linear`` named ``head``.

Assumes inputs of shape (B, in_channels, H, W) with H, W >= 2**(depth // 2)
so no max-pool sees an empty map.  The only activation is ReLU, so LRP-ε
(``teakit.explain``) applies.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class ScaleNorm2d(nn.Module):
    """Batch normalisation without centring or shift: ``x * weight / sqrt(E[x²] + eps)``.

    The per-channel second moment is a batch statistic in training (a running
    average in eval) and is treated as a constant (no gradient through it).
    The layer is then linear in ``x`` with no additive term, so a network built
    from it, bias-free convolutions and ReLUs is positively homogeneous: its
    logit equals the sum of its ε = 0 LRP relevance (Gradient×Input), and
    matching heatmaps pins the logits — no hidden offsets a heatmap cannot see.
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.register_buffer("running_ms", torch.ones(channels))
        self.momentum, self.eps = momentum, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                ms = x.square().mean(dim=(0, 2, 3))
                self.running_ms.mul_(1 - self.momentum).add_(ms, alpha=self.momentum)
        else:
            ms = self.running_ms
        return x * (self.weight * torch.rsqrt(ms + self.eps)).view(1, -1, 1, 1)


class SmallCNN(nn.Module):
    """Plain ReLU CNN: ``forward(x) == head(features(x))``.

    ``bias=False`` makes it bias-free (no conv or head bias, and
    :class:`ScaleNorm2d` instead of BatchNorm): a "conservative" network whose
    logit is exactly the sum of its Gradient×Input relevance.

    ``forward_features_map(x)`` is the output of the convolutional trunk
    (last block's ReLU, followed by its max-pool when the block count is even),
    shape (B, feature_dim, h, w); ``features(x)`` is its spatial mean, shape
    (B, feature_dim).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 16,
                 depth: int = 4, batchnorm: bool = True, bias: bool = True):
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels),
                            ("width", width), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(depth):
            c_out = min(width * 2 ** i, 8 * width)
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=bias and not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm2d(c_out) if bias else ScaleNorm2d(c_out))
            layers.append(nn.ReLU())
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.trunk = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = c_in
        self.num_classes = num_classes
        self.head = nn.Linear(c_in, num_classes, bias=bias)
        if not batchnorm:
            # without normalisation, PyTorch's default conv init shrinks the signal
            # layer by layer and training stalls at chance; He init keeps its scale
            for m in self.trunk:
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward_features_map(self, x: torch.Tensor) -> torch.Tensor:
        """Last 4-D activation, (B, feature_dim, h, w)."""
        return self.trunk(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-head features, (B, feature_dim)."""
        return self.pool(self.trunk(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
