"""The fused LRP-ε ReLU backward (``_EpsilonGrad``, the in-place no-graph path) and the BatchNorm affine
node (``_Affine``), and eval-mode BatchNorm as one ``addcmul``, give the same heatmaps and second-order gradients as the plain autograd
formulation they replace (``g * (y / (y + ε).clamp_min(1e-12))``, and ``torch.var_mean`` with ``addcmul``
behind gradient gates on the batch statistics), in float64 on a train-mode ResNet-18 with per-sample ε including 0."""
import pytest
import torch
import torch.nn.functional as F
import torchvision

from teakit.explain import explain, lrp
from teakit.objectives.heatmap_loss import heatmap_loss


def _reference_relu_backward(ctx, g):
    (x,) = ctx.saved_tensors
    call = ctx.call
    if not call.explaining or (isinstance(call.eps, float) and call.eps == 0.0):
        return torch.ops.aten.threshold_backward(g, x, 0), None
    y = torch.relu(x)
    eps = lrp._per_sample(call.eps, y)
    return g * (y / (y + eps).clamp_min(1e-12)), None


class _Gate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t, call):
        ctx.call = call
        return t.view_as(t)

    @staticmethod
    def backward(ctx, g):
        return (None if ctx.call.explaining else g), None


def _reference_batch_norm_train(call, x, running_mean, running_var, weight, bias, momentum, eps):
    var, mean = torch.var_mean(x, [0, 2, 3], unbiased=False)
    n = x.numel() / x.shape[1]
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
        running_var.mul_(1 - momentum).add_(var.detach() * (n / max(n - 1, 1)), alpha=momentum)
    mean, var = _Gate.apply(mean, call), _Gate.apply(var, call)
    scale = torch.rsqrt(var + eps) * weight
    shift = bias - mean * scale
    return torch.addcmul(shift.view(1, -1, 1, 1), x, scale.view(1, -1, 1, 1))


def _maps_and_gradients(model, x, target, eps, T, T_f):
    params = [p for n, p in model.named_parameters() if n != "fc.bias"]
    S, S_f = explain(model, x, target, eps=eps, create_graph=True, feature_layer=-2)
    grads = torch.autograd.grad(heatmap_loss(S, T) + heatmap_loss(S_f, T_f, pyramid=False), params)
    no_graph = explain(model, x, target, eps=eps)  # the teacher's path: no graph, in-place
    return [S.detach(), S_f.detach(), no_graph, *grads]


def _reference_batch_norm_eval(x, running_mean, running_var, weight, bias, eps):
    return F.batch_norm(x, running_mean, running_var, weight, bias, False, 0.0, eps)


@pytest.mark.parametrize("eps", ["per-sample", "float"])
@pytest.mark.parametrize("train_mode", [True, False])
def test_fused_rules_equal_the_plain_autograd_formulation(monkeypatch, eps, train_mode):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=5).double().train(train_mode)
    if not train_mode:  # running statistics that are not the initial 0 and 1
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.rand(4, 3, 32, 32, dtype=torch.float64)
    target = torch.tensor([0, 3, 1, 4])
    e = torch.tensor([0.0, 0.01, 0.05, 0.1], dtype=torch.float64) if eps == "per-sample" else 0.03
    T = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    T_f = torch.randn(4, 512, 1, 1, dtype=torch.float64)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fused = _maps_and_gradients(model, x, target, e, T, T_f)
    model.load_state_dict(state)  # the same running statistics for the reference
    monkeypatch.setattr(lrp._LRPReLU, "backward", staticmethod(_reference_relu_backward))
    monkeypatch.setattr(lrp, "_batch_norm_train", _reference_batch_norm_train)
    monkeypatch.setattr(lrp, "_batch_norm_eval", _reference_batch_norm_eval)
    reference = _maps_and_gradients(model, x, target, e, T, T_f)
    for a, b in zip(fused, reference):
        assert (a - b).abs().max() <= 1e-9 * b.abs().max()  # float64 rounding only
    assert any(g.abs().max() > 0 for g in fused[3:])
