"""Model zoo: ``build_model(name, num_classes, **kw)`` and helpers to reach a classifier's head.

Names: ``"cnn"`` (:class:`SmallCNN`), ``"resnet18"``, ``"resnet34"``,
``"resnet50"`` (torchvision, randomly initialised unless ``pretrained=True``) and ``"unet"``
(:class:`UNet`, a segmenter whose ``out_channels`` is ``num_classes``).

Classifiers expose their final linear layer through :func:`get_head`
(``SmallCNN.head``, torchvision ResNet ``.fc``) and their pre-head features
through :func:`get_features` / :func:`get_feature_map`.  All models use ReLU
activations only, so LRP-ε (``teakit.explain``) applies to every classifier.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models import ResNet, resnet18, resnet34, resnet50

from ..names import MODEL_NAMES
from .cnn import SmallCNN
from .unet import UNet

_RESNETS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}

__all__ = ["MODEL_NAMES", "SmallCNN", "UNet", "build_model", "get_head", "get_feature_dim",
           "get_features", "get_feature_map"]


def _build_resnet(name: str, num_classes: int, in_channels: int = 3,
                  small_input: bool = False, pretrained: bool = False) -> ResNet:
    """torchvision ResNet, randomly initialised (``weights=None``).

    ``in_channels`` != 3 replaces the stem conv.  ``small_input=True`` uses the
    usual CIFAR stem (3×3 stride-1 conv, no max-pool), suited to 32×32 images.
    ``pretrained=True`` then loads torchvision's ImageNet weights from the local
    torch hub cache only (never downloads; ``FileNotFoundError`` naming the
    expected path when absent), see :mod:`teakit.models.pretrained`.  Skipped,
    i.e. left randomly initialised: ``fc.weight`` / ``fc.bias`` when
    ``num_classes != 1000``, and ``conv1.weight`` when ``small_input=True`` or
    ``in_channels != 3`` (the replaced stem conv).
    """
    model = _RESNETS[name](weights=None, num_classes=num_classes)
    if small_input:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if pretrained:
        from .pretrained import apply_imagenet_weights
        apply_imagenet_weights(model, name, num_classes, in_channels=in_channels, small_input=small_input)
    return model


def build_model(name: str, num_classes: int, **kw) -> nn.Module:
    """Build a model by name.

    ``"cnn"``: kwargs of :class:`SmallCNN` (``in_channels``, ``width``, ``depth``,
    ``batchnorm``).  ``"resnet18/34/50"``: ``in_channels`` (default 3),
    ``small_input`` (default False, CIFAR-style stem) and ``pretrained`` (default
    False; True loads the ImageNet weights from the local torch hub cache, all
    but the final fc when ``num_classes != 1000`` and but the replaced stem conv
    with ``small_input=True`` / ``in_channels != 3``; never downloads).  ``"unet"``: kwargs of
    :class:`UNet` (``in_channels``, ``base``, ``depth``, ``batchnorm``), with
    ``out_channels = num_classes``.  Unknown kwargs raise ``TypeError``.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model name={name!r}; expected one of {', '.join(MODEL_NAMES)}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if name == "cnn":
        return SmallCNN(num_classes=num_classes, **kw)
    if name == "unet":
        if "out_channels" in kw:
            raise TypeError("build_model('unet', ...): give out_channels as num_classes")
        return UNet(out_channels=num_classes, **kw)
    return _build_resnet(name, num_classes, **kw)


def get_head(model: nn.Module) -> nn.Linear:
    """The final linear layer: ``model.head`` (SmallCNN), ``model.fc`` (torchvision ResNet),
    or the last module of an ``nn.Sequential`` when it is an ``nn.Linear``."""
    for attr in ("head", "fc"):
        layer = getattr(model, attr, None)
        if isinstance(layer, nn.Linear):
            return layer
    if isinstance(model, nn.Sequential) and len(model) and isinstance(model[-1], nn.Linear):
        return model[-1]
    raise TypeError(f"model of type {type(model).__name__} has no nn.Linear 'head' or 'fc'")


def get_feature_dim(model: nn.Module) -> int:
    """Dimension of the pre-head features (the head's ``in_features``)."""
    return get_head(model).in_features


def get_feature_map(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Last 4-D activation (B, C', h, w) of a SmallCNN or torchvision ResNet."""
    if isinstance(model, SmallCNN):
        return model.forward_features_map(x)
    if isinstance(model, ResNet):
        m = model
        h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        return m.layer4(m.layer3(m.layer2(m.layer1(h))))
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
    if hasattr(model, "features") and callable(model.features):
        return model.features(x)
    raise TypeError(f"model of type {type(model).__name__} has no known features; "
                    "give it a features(x) method")
