"""Model zoo: ``build_model(name, num_classes, **kw)`` and helpers to reach a classifier's head.

Names (:data:`MODEL_NAMES`): ``"cnn"`` (:class:`SmallCNN`), the torchvision
classifiers with ReLU activations only -- ``"resnet18/34/50/101/152"``,
``"densenet121/161/169/201"``, ``"vgg11/13/16/19"`` and their ``_bn``
variants -- randomly initialised unless given ``weights=FILE`` (a local state
dict, :mod:`teakit.models.weights`) or ``pretrained=True`` (ImageNet weights
from the local torch hub cache, :mod:`teakit.models.pretrained`), and
``"unet"`` (:class:`UNet`, a segmenter whose ``out_channels`` is ``num_classes``).

Classifiers expose their final linear layer through :func:`get_head`
(``SmallCNN.head``, ResNet ``.fc``, DenseNet ``.classifier``, VGG
``.classifier[-1]``) and their pre-head features through :func:`get_features`
/ :func:`get_feature_map`.  All models use ReLU activations only, so LRP-ε
(``teakit.explain``) applies to every classifier.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torchvision.models as tvm
from torchvision.models import DenseNet, ResNet

from ..names import MODEL_NAMES
from .cnn import SmallCNN
from .parts import get_feature_dim, get_feature_map, get_features, get_head
from .unet import UNet

RESNETS = tuple(n for n in MODEL_NAMES if n.startswith("resnet"))
DENSENETS = tuple(n for n in MODEL_NAMES if n.startswith("densenet"))
VGGS = tuple(n for n in MODEL_NAMES if n.startswith("vgg"))
TORCHVISION_NAMES = RESNETS + DENSENETS + VGGS
# "small": the CIFAR-style stem (ResNet: 3×3 stride-1 conv1, no max-pool; DenseNet: 3×3 stride-1 conv0,
# no pool0; VGG: unchanged, its adaptive pooling takes any input of 32 px and more); "imagenet": torchvision's
STEMS = ("small", "imagenet")
SMALL_STEM_MAX_SIDE = 32  # --stem auto: the small stem for images of at most this side

__all__ = ["MODEL_NAMES", "TORCHVISION_NAMES", "STEMS", "SmallCNN", "UNet", "build_model", "resolve_stem",
           "get_head", "get_feature_dim", "get_features", "get_feature_map"]


def resolve_stem(stem: str, image_side: int) -> str:
    """``"auto"``: ``"small"`` for images of at most :data:`SMALL_STEM_MAX_SIDE` px, else ``"imagenet"``;
    ``"small"`` / ``"imagenet"`` as given."""
    if stem == "auto":
        return "small" if int(image_side) <= SMALL_STEM_MAX_SIDE else "imagenet"
    if stem not in STEMS:
        raise ValueError(f"stem={stem!r}; expected auto, {' or '.join(STEMS)}")
    return stem


def _stem_of(stem: str | None, small_input: bool | None) -> str:
    """The stem from ``stem`` and the older ``small_input`` flag (configs that recorded it still load)."""
    if stem is None:
        return "small" if small_input else "imagenet"
    if stem == "auto":
        raise ValueError("stem='auto' is chosen from the image size: resolve it first "
                         "(teakit.models.resolve_stem(stem, image_side)), or give 'small' or 'imagenet'")
    if stem not in STEMS:
        raise ValueError(f"stem={stem!r}; expected {' or '.join(STEMS)}")
    if small_input is not None and bool(small_input) != (stem == "small"):
        raise ValueError(f"small_input={small_input} contradicts stem={stem!r}; give stem alone")
    return stem


def _kaiming(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.kaiming_normal_(conv.weight)
    return conv


def _build_torchvision(name: str, num_classes: int, in_channels: int = 3, stem: str | None = None,
                       small_input: bool | None = None) -> tuple[nn.Module, bool]:
    """A torchvision classifier, randomly initialised (``weights=None``), and whether its stem conv
    was replaced (the small stem's, or ``in_channels != 3``).

    ``stem="small"`` (or the older ``small_input=True``): ResNet: 3×3 stride-1 ``conv1``, no
    ``maxpool`` (the usual CIFAR stem); DenseNet: 3×3 stride-1 ``features.conv0``, no
    ``features.pool0``; VGG: unchanged.  ``stem="imagenet"`` (default): torchvision's.
    ``in_channels`` != 3 replaces the stem conv (same kernel and stride)."""
    stem = _stem_of(stem, small_input)
    small = stem == "small"
    model = getattr(tvm, name)(weights=None, num_classes=num_classes)
    if isinstance(model, ResNet):
        # the ResNet stem convs keep PyTorch's default init, as teakit always built them
        if small:
            model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            model.maxpool = nn.Identity()
        elif in_channels != 3:
            model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        return model, small or in_channels != 3
    if isinstance(model, DenseNet):
        width = model.features.conv0.out_channels
        if small:
            model.features.conv0 = _kaiming(nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1,
                                                      bias=False))
            model.features.pool0 = nn.Identity()
        elif in_channels != 3:
            model.features.conv0 = _kaiming(nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3,
                                                      bias=False))
        return model, small or in_channels != 3
    if in_channels != 3:  # VGG
        first = model.features[0]
        conv = nn.Conv2d(in_channels, first.out_channels, kernel_size=3, padding=1)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.constant_(conv.bias, 0)
        model.features[0] = conv
    return model, in_channels != 3


def build_model(name: str, num_classes: int, **kw) -> nn.Module:
    """Build a model by name.

    ``"cnn"``: kwargs of :class:`SmallCNN` (``in_channels``, ``width``, ``depth``,
    ``batchnorm``).  The torchvision classifiers (:data:`TORCHVISION_NAMES`):
    ``in_channels`` (default 3), ``stem`` (``"small"`` or ``"imagenet"``, the default;
    ``"auto"`` is resolved from the image size before, :func:`resolve_stem`; the older
    ``small_input=True`` means ``"small"``) and ``pretrained`` (default False; True loads
    the ImageNet weights from the local torch hub cache, :mod:`teakit.models.pretrained`).
    ``"unet"``: kwargs of :class:`UNet` (``in_channels``, ``base``, ``depth``,
    ``batchnorm``), with ``out_channels = num_classes``.

    Every model takes ``weights=FILE``: a local state dict (``.pth``/``.pt``/``.safetensors``,
    torchvision's key names) loaded into every layer but a head of another size and a
    replaced stem conv of another shape, printing what was loaded and skipped; a file of
    another architecture is refused (:mod:`teakit.models.weights`).  Never downloads.
    Unknown kwargs raise ``TypeError``.

    The model's 4-D weights are returned in channels-last memory layout, so its convolutions and
    pooling run channels-last (on CPU a training step of the small CNN at batch 64 then takes 18-30 %
    less time; PyTorch's max-pool is many times slower on (B, C, H, W)-contiguous input there).  Values,
    state dicts and inputs are unchanged: inputs may be in either layout.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model name={name!r}; expected one of {', '.join(MODEL_NAMES)}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    weights = kw.pop("weights", None)
    pretrained = kw.pop("pretrained", False) if name in TORCHVISION_NAMES else False
    if weights is not None and pretrained:
        raise ValueError("give either weights=FILE or pretrained=True (ImageNet weights), not both")
    stem_replaced = False
    if name == "cnn":
        model = SmallCNN(num_classes=num_classes, **kw)
    elif name == "unet":
        if "out_channels" in kw:
            raise TypeError("build_model('unet', ...): give out_channels as num_classes")
        model = UNet(out_channels=num_classes, **kw)
    else:
        model, stem_replaced = _build_torchvision(name, num_classes, **kw)
    if pretrained:
        from .pretrained import apply_imagenet_weights
        apply_imagenet_weights(model, name, num_classes, stem_replaced=stem_replaced)
    if weights is not None:
        from .weights import load_weights
        load_weights(model, weights, name=name, stem_replaced=stem_replaced)
    return model.to(memory_format=torch.channels_last)
