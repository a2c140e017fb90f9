"""Predictive group invariance (teakit.objectives.pgi): hand value, the head, one training step."""
import math

import pytest
import torch
import torch.nn as nn

from teakit.models import SmallCNN
from teakit.objectives.pgi import PGI


def softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def kl(q, p):
    return sum(a * math.log(a / b) for a, b in zip(q, p))


def test_hand_value():
    """Logits = x (identity head on flattened (1, 1, 2) images); class 0: bias 0 is the majority
    (2 images) and bias 1 the minority; class 1: bias 1 the majority, bias 0 the minority, and an
    image without attribute (-1), which counts in the cross-entropy only."""
    z = [[2, 0], [0, 0], [0, 1], [0, 3], [1, 2], [2, 2], [1, 0]]
    y = [0, 0, 0, 1, 1, 1, 1]
    bias = [0, 0, 1, 1, 1, 0, -1]
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(2))
    batch = {"x": torch.tensor(z, dtype=torch.float32).view(7, 1, 1, 2), "y": torch.tensor(y),
             "bias": torch.tensor(bias)}
    loss, logs = PGI(penalty_weight=3.0)(batch, model, torch.Generator())
    p = [softmax(v) for v in z]

    def mean(rows):
        return [sum(c) / len(rows) for c in zip(*rows)]
    penalty = (kl(p[2], mean([p[0], p[1]])) + kl(p[5], mean([p[3], p[4]]))) / 2  # KL / K, K = 2
    ce = sum(-math.log(p[i][y[i]]) for i in range(7)) / 7
    assert logs["pgi_penalty"].item() == pytest.approx(penalty, rel=1e-5)
    assert loss.item() == pytest.approx(ce + 3.0 * penalty, rel=1e-5)
    # the direction matters: KL(minority ‖ majority), not the reverse
    assert penalty != pytest.approx((kl(mean([p[0], p[1]]), p[2]) + kl(mean([p[3], p[4]]), p[5])) / 2, rel=1e-3)


def make_batch():
    """Two groups in every class; group 1's images carry a red cast, so their predictions differ."""
    g = torch.Generator().manual_seed(2)
    bias = (torch.arange(12) // 3) % 2
    x = torch.rand(12, 3, 8, 8, generator=g)
    x[:, 0] += 2.0 * bias.view(-1, 1, 1)
    return {"x": x, "y": torch.arange(12) % 3, "bias": bias}


def test_the_penalty_leaves_the_head_alone():
    grads = {}
    for weight in (0.0, 100.0):
        torch.manual_seed(0)
        model = SmallCNN(num_classes=3, width=4, depth=2)
        loss, logs = PGI(penalty_weight=weight)(make_batch(), model, torch.Generator())
        loss.backward()
        grads[weight] = (model.head.weight.grad.clone(), model.trunk[0].weight.grad.clone())
        assert logs["pgi_penalty"] > 0
    assert torch.equal(grads[0.0][0], grads[100.0][0])            # the head: cross-entropy only
    assert not torch.allclose(grads[0.0][1], grads[100.0][1])     # the features: the penalty too


def test_one_step_lowers_the_penalty():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, width=4, depth=2)
    obj = PGI()  # λ = 50
    opt = torch.optim.SGD(model.parameters(), lr=2e-4)
    loss, before = obj(make_batch(), model, torch.Generator())
    opt.zero_grad()
    loss.backward()
    opt.step()
    _, after = obj(make_batch(), model, torch.Generator())
    assert after["pgi_penalty"] < 0.9 * before["pgi_penalty"]
