"""GAIN with mask supervision (teakit.objectives.gain): hand value, one training step."""
import math

import pytest
import torch
import torch.nn as nn

from teakit.models import SmallCNN
from teakit.objectives.gain import GAIN


class Tiny(nn.Module):
    """f = ReLU(x) (a 1×1 convolution of weight 1), logits = (2, -1) · mean(f): Grad-CAM of class c
    is ReLU(w_c / 4 · f) at the input resolution (2×2)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        self.head = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.head.weight.copy_(torch.tensor([[2.0], [-1.0]]))

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


def test_hand_value():
    px = [0.4, 0.8, 1.2, 1.6]
    x = torch.tensor(px).view(1, 1, 2, 2).repeat(2, 1, 1, 1)
    mask = torch.tensor([[True, True, False, False], [False, False, True, True]]).view(2, 1, 2, 2)
    batch = {"x": x, "y": torch.tensor([0, 1]), "mask": mask}
    loss, logs = GAIN()(batch, Tiny(), torch.Generator())  # α 1, ω 10, σ 0.5, mask weight 10
    attention = [[0.5 * v for v in px], [0.0] * 4]          # class 0: 2/4 · x; class 1: ReLU(-1/4 · x) = 0
    erased_mean = [sum(v * (1 - sigmoid(10 * (a - 0.5))) for v, a in zip(px, att)) / 4 for att in attention]
    # on the erased images, logits (2m, -m): class 0's probability 1/(1 + e^{-3m}), class 1's 1/(1 + e^{3m})
    mining = (sigmoid(3 * erased_mean[0]) + sigmoid(-3 * erased_mean[1])) / 2
    target = [[1, 1, 0, 0], [0, 0, 1, 1]]
    external = sum((a - t) ** 2 for att, tt in zip(attention, target) for a, t in zip(att, tt)) / 8
    m = sum(px) / 4                                            # logits (2m, -m) on the original images
    ce = (math.log(1 + math.exp(-3 * m)) + math.log(1 + math.exp(3 * m))) / 2
    assert logs["attention_mining"].item() == pytest.approx(mining, rel=1e-5)
    assert logs["mask_loss"].item() == pytest.approx(external, rel=1e-5)
    assert logs["ce"].item() == pytest.approx(ce, rel=1e-5)
    assert loss.item() == pytest.approx(ce + mining + 10 * external, rel=1e-5)


def test_one_step_lowers_the_mask_loss_and_the_mining_score():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, width=4, depth=2)
    g = torch.Generator().manual_seed(1)
    batch = {"x": torch.rand(6, 3, 8, 8, generator=g), "y": torch.arange(6) % 3,
             "mask": torch.rand(6, 1, 8, 8, generator=g) < 0.4}
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    # each term weighted far above the cross-entropy, so that its own gradient leads the step
    for obj, key in ((GAIN(alpha=0.0, mask_weight=1000.0), "mask_loss"),
                     (GAIN(alpha=100.0, mask_weight=0.0), "attention_mining")):
        loss, before = obj(batch, model, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        _, after = obj(batch, model, g)
        assert after[key] < before[key] - 1e-3, key
