"""The published ISNet loss (teakit.objectives.isnet): hand value, heatmaps, one training step."""
import math

import pytest
import torch
import torch.nn as nn

from teakit.explain import explain
from teakit.models import SmallCNN
from teakit.objectives.isnet import ISNet, all_class_heatmaps, gwrp


def linear_model():
    """Logits = W · flatten(x): LRP-ε of class k is exactly x ⊙ W_k (no ReLU to modify)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]]))
    return model


def test_hand_value_on_a_known_mask():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])           # (1, 1, 2, 2)
    mask = torch.tensor([[[[True, True], [False, False]]]])   # foreground: the top row
    batch = {"x": x, "y": torch.tensor([0]), "mask": mask}
    obj = ISNet(P=0.7, c1=1.5, c2=1.8)  # w_bg 1, w_fg 3, E 1, d 0.9: the defaults
    loss, logs = obj(batch, linear_model(), torch.Generator())
    # heatmaps: class 0 = [1, 0, 0, 4], class 1 = [0, 2, 3, 4] (row-major)
    S = 1 + 0.9 + 0.81 + 0.729                              # GWRP weights over the 4 pixels
    # class 0: foreground mean |R| = (1 + 0) / 2; background / 0.5 = [0, 8] -> sorted [8, 0, 0, 0]
    # class 1: foreground mean |R| = (0 + 2) / 2; background / 1 = [3, 4] -> sorted [4, 3, 0, 0]
    z0, z1 = 8 / S, (4 + 0.9 * 3) / S
    background = (math.log(1 + z0) + math.log(1 + z1)) / 2  # -log(1 - z/(z+1)), mean over the classes
    # foreground relevance 1 and 2 against [C1, C2] = [1.5, 1.8]: class 0 below C1, class 1 above C2
    foreground = ((1 / 1.5 - 1) ** 2 + 0) / 2 + (0 + (2 / 1.5 - 1.8 / 1.5) ** 2) / 2
    ce = math.log(math.exp(5) + math.exp(9)) - 5              # logits (5, 9), label 0
    assert logs["background_loss"].item() == pytest.approx(background, rel=1e-6)
    assert logs["foreground_loss"].item() == pytest.approx(foreground, rel=1e-6)
    assert logs["ce"].item() == pytest.approx(ce, rel=1e-6)
    assert loss.item() == pytest.approx(0.3 * ce + 0.7 * (background + 3 * foreground), rel=1e-6)


def test_gwrp_weights_the_largest_values_most():
    v = torch.tensor([1.0, 3.0, 2.0])
    assert gwrp(v, 0.5).item() == pytest.approx((3 + 0.5 * 2 + 0.25 * 1) / 1.75)
    assert gwrp(v, 1.0).item() == pytest.approx(2.0)  # d = 1: the plain mean


def test_heatmaps_of_every_class_match_explain():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, width=4, depth=2).eval()
    x = torch.rand(4, 3, 8, 8)
    H, logits = all_class_heatmaps(model, x, 0.05, create_graph=False)
    assert H.shape == (4, 3, 3, 8, 8) and torch.allclose(logits, model(x))
    for k in range(3):
        R = explain(model, x, torch.full((4,), k), eps=0.05)
        assert torch.allclose(H[:, k], R, atol=1e-6), k


def test_one_step_lowers_background_relevance():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, width=4, depth=2)
    g = torch.Generator().manual_seed(1)
    batch = {"x": torch.rand(6, 3, 8, 8, generator=g), "y": torch.arange(6) % 3,
             "mask": torch.rand(6, 1, 8, 8, generator=g) < 0.4}
    obj = ISNet(P=1.0, w_fg=0.0)  # the background term alone
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss, before = obj(batch, model, g)
    opt.zero_grad()
    loss.backward()
    opt.step()
    _, after = obj(batch, model, g)
    assert after["background_loss"] < before["background_loss"] - 1e-4


def test_stochastic_isnet_is_the_original_loss_on_the_drawn_classes():
    """classes="random": the loss and its parameter gradient equal the all-class heatmaps' loss on each image's
    drawn class (an independent route: every class's map, then the drawn one picked out)."""
    from teakit.objectives.isnet import isnet_heatmap_loss, uniform_classes
    torch.manual_seed(0)
    model = SmallCNN(num_classes=4, width=4, depth=2).eval()
    g = torch.Generator().manual_seed(3)
    batch = {"x": torch.rand(6, 3, 8, 8, generator=g), "y": torch.arange(6) % 4,
             "mask": torch.rand(6, 1, 8, 8, generator=g) < 0.5}
    obj = ISNet(classes="random")
    loss, logs = obj(batch, model, torch.Generator().manual_seed(7))
    params = list(model.parameters())
    g_stochastic = torch.autograd.grad(loss, params)
    drawn = uniform_classes(torch.zeros(6, 4), torch.Generator().manual_seed(7))  # the same draw
    assert len(set(drawn.tolist())) > 1  # the draw differs between images
    H, logits = all_class_heatmaps(model, batch["x"], 0.01, create_graph=True)
    picked = H[torch.arange(6), drawn].unsqueeze(1)
    heat, background, _ = isnet_heatmap_loss(picked, batch["mask"])
    ref = 0.3 * torch.nn.functional.cross_entropy(logits, batch["y"]) + 0.7 * heat.mean()
    g_ref = torch.autograd.grad(ref, params)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert logs["background_loss"].item() == pytest.approx(background.mean().item(), rel=1e-5)
    for a, b in zip(g_stochastic, g_ref):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
    # another image's class gives another loss: the draw matters
    other = H[torch.arange(6), (drawn + 1) % 4].unsqueeze(1)
    assert isnet_heatmap_loss(other, batch["mask"])[0].mean().item() != pytest.approx(heat.mean().item(), rel=1e-3)


def test_stochastic_isnet_draws_every_class_uniformly_and_reproducibly():
    from teakit.objectives.isnet import uniform_classes
    logits = torch.zeros(20000, 5)
    a = uniform_classes(logits, torch.Generator().manual_seed(1))
    b = uniform_classes(logits, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    share = torch.bincount(a, minlength=5).float() / len(a)
    assert torch.allclose(share, torch.full((5,), 0.2), atol=0.01)


def test_isnet_rejects_unknown_classes_mode():
    with pytest.raises(ValueError, match="classes"):
        ISNet(classes="top")
