"""The fused LRP-ε ReLU backward (``_EpsilonGrad``, the in-place no-graph path), training-mode
BatchNorm as one native node (``_BatchNormTrain``, ``_BatchNormInputGrad``), eval-mode BatchNorm as
one ``addcmul`` and the convolution's input gradient as one node (``_Conv2d``, ``_ConvInputGrad``) give
the same heatmaps and second-order gradients as the plain autograd formulation they replace
(``g * (y / (y + ε).clamp_min(1e-12))``, ``torch.var_mean`` with ``addcmul`` behind gradient gates on
the batch statistics, the native convolution), in float64 on ResNet-18 (train and eval mode) with
per-sample ε including 0, and on a network with strided, dilated, grouped and biased convolutions."""
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
    monkeypatch.setattr(lrp, "_conv2d", _reference_conv2d)
    reference = _maps_and_gradients(model, x, target, e, T, T_f)
    for a, b in zip(fused, reference):
        assert (a - b).abs().max() <= 1e-9 * b.abs().max()  # float64 rounding only
    assert any(g.abs().max() > 0 for g in fused[3:])


def _reference_conv2d(call, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)  # the native node


class _ConvNet(torch.nn.Module):
    """Convolutions with bias, stride, dilation and groups (ResNet-18 has none of these)."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=True)
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2, bias=True)
        self.c3 = torch.nn.Conv2d(8, 6, 1, bias=False)
        self.fc = torch.nn.Linear(6, 4)

    def forward(self, x):
        h = F.relu(self.c1(x))
        h = F.relu(self.c2(h) + h)
        return self.fc(F.relu(self.c3(h)).mean((2, 3)))


def _maps_and_loss_gradients(model, x, target, T):
    """The heatmap at ε = 0.05 and the gradients of its loss against ``T`` (every parameter but fc.bias)."""
    S = explain(model, x, target, eps=0.05, create_graph=True)
    return [S.detach(), *torch.autograd.grad(heatmap_loss(S, T), [p for n, p in model.named_parameters()
                                                                   if n != "fc.bias"])]


def _assert_equal_and_nonzero(fused, reference):
    for a, b in zip(fused, reference):
        assert (a - b).abs().max() <= 1e-10 * b.abs().max()
    assert all(g.abs().max() > 0 for g in fused[1:])


def test_conv_input_grad_node_equals_the_native_double_backward(monkeypatch):
    torch.manual_seed(1)
    model = _ConvNet().double()
    x = torch.rand(3, 3, 11, 11, dtype=torch.float64)
    target = torch.tensor([0, 3, 1])
    T = torch.randn(3, 3, 11, 11, dtype=torch.float64)

    fused = _maps_and_loss_gradients(model, x, target, T)
    monkeypatch.setattr(lrp, "_conv2d", _reference_conv2d)
    reference = _maps_and_loss_gradients(model, x, target, T)
    _assert_equal_and_nonzero(fused, reference)


def test_gradcam_second_order_through_the_conv_node_equals_the_native_one(monkeypatch):
    torch.manual_seed(3)
    model = _ConvNet().double()
    x = torch.rand(3, 3, 11, 11, dtype=torch.float64)
    target = torch.tensor([1, 0, 2])

    def gradients():
        A = explain(model, x, target, method="gradcam", create_graph=True)
        return torch.autograd.grad(A.square().sum(), [model.c3.weight, model.fc.weight])

    fused = gradients()
    monkeypatch.setattr(lrp, "_conv2d", _reference_conv2d)
    for a, b in zip(fused, gradients()):
        assert (a - b).abs().max() <= 1e-10 * b.abs().max() and b.abs().max() > 0


def test_conv_input_grad_node_matches_finite_differences():
    torch.manual_seed(2)
    conf = ([2, 1], [1, 0], [1, 2], 2)  # stride, padding, dilation, groups
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64)
    weight = torch.randn(6, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn_like(F.conv2d(x, weight, None, *conf)).requires_grad_(True)
    out = lrp._ConvInputGrad.apply(g, weight, x, conf)
    native = torch.autograd.grad(F.conv2d(x.requires_grad_(True), weight, None, *conf), x, g)[0]
    assert (out - native).abs().max() <= 1e-12 * native.abs().max()
    assert torch.autograd.gradcheck(lambda g, w: lrp._ConvInputGrad.apply(g, w, x, conf), (g, weight))


def _reference_max_pool2d(call, x, *args, **kwargs):
    return F.max_pool2d(x, *args, **kwargs)  # the native node


def _graph_node_names(t: torch.Tensor) -> set:
    names, todo, seen = set(), [t.grad_fn], set()
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        todo.extend(f for f, _ in node.next_functions)
    return names


class _PoolNet(torch.nn.Module):
    """Max-pools of several shapes: 3×3 stride 2 with padding (ResNet's stem), 2×2, ceil mode."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = torch.nn.Conv2d(6, 6, 3, padding=1)
        self.fc = torch.nn.Linear(6, 4)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.c1(x)), 3, 2, 1)
        h = torch.nn.MaxPool2d(2)(F.relu(self.c2(h)))
        h = F.max_pool2d(h, 2, ceil_mode=True)
        return self.fc(h.mean((2, 3)))


@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_input_grad_node_equals_the_native_double_backward(monkeypatch, channels_last):
    torch.manual_seed(4)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = _PoolNet().double().to(memory_format=layout)
    x = torch.rand(3, 3, 13, 13, dtype=torch.float64).contiguous(memory_format=layout)
    target = torch.tensor([2, 0, 3])
    T = torch.randn(3, 3, 13, 13, dtype=torch.float64)

    fused = _maps_and_loss_gradients(model, x, target, T)
    assert _graph_node_names(explain(model, x, target, eps=0.05, create_graph=True)) >= {"_MaxPoolInputGradBackward"}
    monkeypatch.setattr(lrp, "_max_pool2d", _reference_max_pool2d)
    reference = _maps_and_loss_gradients(model, x, target, T)
    _assert_equal_and_nonzero(fused, reference)


@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_input_grad_node_matches_finite_differences_and_keeps_the_layout(channels_last):
    torch.manual_seed(5)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    conf = ([3, 3], [2, 2], [1, 1], [1, 1], False)  # kernel, stride, padding, dilation, ceil_mode
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64).contiguous(memory_format=layout)
    y, indices = torch.ops.aten.max_pool2d_with_indices(x, *conf)
    g = torch.randn_like(y).requires_grad_(True)
    out = lrp._MaxPoolInputGrad.apply(g, x, indices, conf)
    native = torch.autograd.grad(F.max_pool2d(x.requires_grad_(True), 3, 2, 1), x, g)[0]
    assert torch.equal(out, native)
    assert torch.autograd.gradcheck(lambda g: lrp._MaxPoolInputGrad.apply(g, x, indices, conf), (g,))
    u = torch.randn_like(x)
    (read,) = torch.autograd.grad(out, g, u)
    assert read.is_contiguous(memory_format=layout)
