"""Where things are in a classifier: its head (last linear layer), its pre-head feature map and features,
for :class:`~teakit.models.cnn.SmallCNN` and the torchvision ResNets, DenseNets and VGGs."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import VGG, DenseNet, ResNet

from .cnn import SmallCNN


def get_head(model: nn.Module) -> nn.Linear:
    """The final linear layer: ``model.head`` (SmallCNN), ``model.fc`` (torchvision ResNet),
    ``model.classifier`` (DenseNet), ``model.classifier[-1]`` (VGG), or the last module of an
    ``nn.Sequential`` when it is an ``nn.Linear``."""
    for attr in ("head", "fc"):
        layer = getattr(model, attr, None)
        if isinstance(layer, nn.Linear):
            return layer
    if isinstance(model, DenseNet) and isinstance(model.classifier, nn.Linear):
        return model.classifier
    if isinstance(model, VGG) and isinstance(model.classifier[-1], nn.Linear):
        return model.classifier[-1]
    if isinstance(model, nn.Sequential) and len(model) and isinstance(model[-1], nn.Linear):
        return model[-1]
    raise TypeError(f"model of type {type(model).__name__} has no nn.Linear 'head' or 'fc'")


def get_feature_dim(model: nn.Module) -> int:
    """Dimension of the pre-head features (the head's ``in_features``)."""
    return get_head(model).in_features


def get_feature_map(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Last 4-D activation (B, C', h, w) of a SmallCNN or torchvision ResNet, DenseNet or VGG."""
    if isinstance(model, SmallCNN):
        return model.forward_features_map(x)
    if isinstance(model, ResNet):
        m = model
        h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        return m.layer4(m.layer3(m.layer2(m.layer1(h))))
    if isinstance(model, DenseNet):  # torchvision applies this ReLU functionally after features.norm5
        return F.relu(model.features(x))
    if isinstance(model, VGG):  # the last max-pool's output
        return model.features(x)
    if hasattr(model, "forward_features_map"):
        return model.forward_features_map(x)
    raise TypeError(f"model of type {type(model).__name__} has no known feature map; "
                    "give it a forward_features_map(x) method")


def get_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pre-head features (B, F), so that ``get_head(model)(get_features(model, x)) == model(x)``."""
    if isinstance(model, SmallCNN):
        return model.features(x)
    if isinstance(model, ResNet):
        return torch.flatten(model.avgpool(get_feature_map(model, x)), 1)
    if isinstance(model, DenseNet):
        return torch.flatten(F.adaptive_avg_pool2d(get_feature_map(model, x), (1, 1)), 1)
    if isinstance(model, VGG):  # the input of the last Linear: the classifier's layers before it
        return model.classifier[:-1](torch.flatten(model.avgpool(get_feature_map(model, x)), 1))
    if hasattr(model, "features") and callable(model.features):
        return model.features(x)
    raise TypeError(f"model of type {type(model).__name__} has no known features; "
                    "give it a features(x) method")


def forward_with_input_of(model: nn.Module, layer: nn.Module, x: torch.Tensor):
    """``(model(x), the input `layer` received in that same pass)`` (its last call; None if it was not
    called): one forward pass, so BatchNorm statistics are updated once."""
    seen = []
    handle = layer.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        out = model(x)
    finally:
        handle.remove()
    return out, (seen[-1] if seen else None)
