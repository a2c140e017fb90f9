"""Every listed torchvision model runs through explain(create_graph=True) and a loss backward.

Models are used exactly as torchvision builds them (in-place ReLUs, reused ReLU
modules, functional relu calls, ``out += identity``, concatenation).
"""
import pytest
import torch
import torchvision

import teakit

MODELS = ["resnet18", "resnet34", "resnet50", "densenet121", "vgg11_bn", "vgg16"]


@pytest.mark.parametrize("name", MODELS)
def test_torchvision_model_trains_through_lrp(name):
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(num_classes=4).train()
    x = torch.rand(2, 3, 32, 32)
    target = torch.tensor([1, 3])
    eps = torch.tensor([0.01, 0.1])
    R = teakit.explain(net, x, target, eps=eps, create_graph=True)
    assert R.shape == x.shape and torch.isfinite(R).all() and R.abs().sum() > 0
    loss = teakit.heatmap_loss(R, torch.rand_like(R))
    loss.backward()
    first_conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
