"""The explanation engine against independent references.

1. LRP-ε equals an explicit layer-by-layer LRP-ε (written here with unfold/fold
   and plain loops, no autograd), with per-sample ε including ε = 0 and an
   overlapping max-pool, in float64.
2. Second-order gradients of a loss on the heatmap equal central finite
   differences (BatchNorm, residual add, one in-place ReLU module reused).
3. ε = 0 equals autograd Gradient×Input on torchvision ResNet-18.
4. The model is intact after explain(..., create_graph=True).
5. (test_torchvision_models.py) every listed torchvision model trains through it.
"""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import teakit
from teakit.explain import explain


@pytest.fixture(autouse=True)
def float64_default():
    """All tests here run in float64 (the 1e-9 comparisons need it); restored after."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


# ---------------------------------------------------------------- reference LRP-ε
def ref_conv(a, W, b):
    """Explicit conv as im2col matmul: returns z and the column matrix."""
    B, C, H, Wd = a.shape
    k = W.shape[-1]
    cols = F.unfold(a, k, padding=k // 2)                      # (B, C*k*k, L)
    z = W.view(W.shape[0], -1) @ cols + b.view(1, -1, 1)        # (B, O, L)
    return z.view(B, W.shape[0], H, Wd), cols


def ref_lrp_conv(a, W, b, R_out, eps_b):
    """R_in_j = a_j * sum_k w_jk R_k / (z_k + eps*sign(z_k)), eps per sample."""
    z, cols = ref_conv(a, W, b)
    den = z + eps_b.view(-1, 1, 1, 1) * torch.where(z >= 0, 1.0, -1.0)
    ratio = torch.where(R_out == 0, torch.zeros_like(z), R_out / den)
    k = W.shape[-1]
    c = W.view(W.shape[0], -1).t() @ ratio.flatten(2)          # (B, C*k*k, L)
    R_cols = cols * c
    return F.fold(R_cols, a.shape[-2:], k, padding=k // 2)


def ref_lrp_linear(a, W, b, R_out, eps_b):
    z = a @ W.t() + b
    den = z + eps_b.view(-1, 1) * torch.where(z >= 0, 1.0, -1.0)
    ratio = torch.where(R_out == 0, torch.zeros_like(z), R_out / den)
    return a * (ratio @ W)


def ref_maxpool(a, k, s):
    """Max-pool forward and winner-take-all relevance routing, by loops."""
    B, C, H, W = a.shape
    Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
    out = torch.empty(B, C, Ho, Wo)
    arg = {}
    for b in range(B):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    win = a[b, c, i * s:i * s + k, j * s:j * s + k]
                    idx = int(torch.argmax(win))
                    out[b, c, i, j] = win.flatten()[idx]
                    arg[b, c, i, j] = (i * s + idx // k, j * s + idx % k)

    def route(R_out):
        R = torch.zeros_like(a)
        for (b, c, i, j), (p, q) in arg.items():
            R[b, c, p, q] += R_out[b, c, i, j]
        return R
    return out, route


def ref_avgpool_lrp0(a, R_out):
    """LRP-0 through 2x2 average pooling: R_j = a_j * (1/4) R_k / z_k."""
    z = F.avg_pool2d(a, 2)
    ratio = torch.where(R_out == 0, torch.zeros_like(z), R_out / z)
    return a * F.interpolate(ratio, scale_factor=2, mode="nearest") / 4


class SmallNet(nn.Module):
    """conv-ReLU-maxpool(3, stride 2: overlapping)-conv-ReLU-avgpool-linear-ReLU-linear."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 5, 3, padding=1)
        self.l1 = nn.Linear(5 * 3 * 3, 12)
        self.l2 = nn.Linear(12, 4)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 3, 2)     # 13 -> 6
        x = F.avg_pool2d(torch.relu(self.c2(x)), 2)     # 6 -> 3
        return self.l2(self.l1(x.flatten(1)).relu())


def reference_lrp(net, x, target, eps, features=False):
    """Input relevance; with ``features`` also the relevance of the ReLU outputs ``a1`` and ``a2``."""
    a0 = x
    z1, _ = ref_conv(a0, net.c1.weight, net.c1.bias)
    a1 = z1.clamp_min(0)
    p1, route = ref_maxpool(a1, 3, 2)
    z2, _ = ref_conv(p1, net.c2.weight, net.c2.bias)
    a2 = z2.clamp_min(0)
    p2 = F.avg_pool2d(a2, 2)
    f = p2.flatten(1)
    z3 = f @ net.l1.weight.t() + net.l1.bias
    a3 = z3.clamp_min(0)
    z4 = a3 @ net.l2.weight.t() + net.l2.bias
    R4 = torch.zeros_like(z4)
    R4[torch.arange(len(x)), target] = z4[torch.arange(len(x)), target]
    # last linear: not followed by a ReLU -> LRP-0
    R3 = ref_lrp_linear(a3, net.l2.weight, net.l2.bias, R4, torch.zeros(len(x)))
    Rf = ref_lrp_linear(f, net.l1.weight, net.l1.bias, R3, eps)
    Rp2 = Rf.view_as(p2)
    Ra2 = ref_avgpool_lrp0(a2, Rp2)
    Rp1 = ref_lrp_conv(p1, net.c2.weight, net.c2.bias, Ra2, eps)
    Ra1 = route(Rp1)
    R0 = ref_lrp_conv(a0, net.c1.weight, net.c1.bias, Ra1, eps)
    return (R0, Ra1, Ra2) if features else R0


def test_lrp_equals_explicit_layerwise_lrp_with_per_sample_eps():
    torch.manual_seed(0)
    net = SmallNet()
    x = torch.randn(5, 3, 13, 13)
    target = torch.tensor([0, 1, 2, 3, 1])
    eps = torch.tensor([0.0, 0.01, 0.05, 0.3, 1.0])
    R = explain(net, x, target, method="lrp", eps=eps)
    R_ref = reference_lrp(net, x, target, eps)
    assert R.shape == x.shape
    assert torch.allclose(R, R_ref, atol=1e-9, rtol=1e-9), (R - R_ref).abs().max()
    # a float eps equals the same value given per sample
    R_float = explain(net, x, target, eps=0.05)
    assert torch.allclose(R_float, reference_lrp(net, x, target, torch.full((5,), 0.05)), atol=1e-9)
    # and eps really matters: a different eps gives a different map
    assert not torch.allclose(R, R_float, atol=1e-6)


@pytest.mark.parametrize("train_mode", [False, True])
def test_explain_all_equals_one_reference_map_per_class_and_eps(train_mode):
    from teakit.explain import explain_all

    torch.manual_seed(0)
    net = SmallNet().train(train_mode)
    x = torch.randn(3, 3, 13, 13)
    eps_values = [0.0, 0.02, 0.5]
    K = net(x).shape[1]
    net.train(train_mode)
    maps, logits = explain_all(net, x, K, eps_values, return_logits=True)
    assert maps.shape == (3, K, 3, 3, 13, 13) and not maps.requires_grad
    for k in range(K):
        for e, eps in enumerate(eps_values):
            target = torch.full((3,), k)
            ref = (reference_lrp(net, x, target, torch.full((3,), eps)) if not train_mode
                   else explain(net, x, target, eps=eps))
            assert torch.allclose(maps[:, k, e], ref, atol=1e-9, rtol=1e-9), (k, eps)
    assert not torch.allclose(maps[:, 0, 1], maps[:, 0, 2], atol=1e-6)  # ε is read per backward pass
    with pytest.raises(ValueError, match="eps_values"):
        explain_all(net, x, K, [])


def test_eps_zero_is_gradient_times_input_without_nan():
    torch.manual_seed(1)
    net = SmallNet()
    x = torch.randn(3, 3, 13, 13)
    x[0] = 0.0  # many exact zeros after the ReLUs
    target = torch.tensor([2, 0, 1])
    R = explain(net, x, target, eps=0.0)
    G = explain(net, x, target, method="gradxinput")
    xg = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(net(xg).gather(1, target[:, None]).sum(), xg)
    assert torch.isfinite(R).all()
    assert torch.equal(R, G)
    assert torch.allclose(R, g * x, atol=1e-12)
    assert torch.allclose(explain(net, x, target, method="inputgrad"), g, atol=1e-12)


# ---------------------------------------------------------------- second order

def test_feature_layer_relevance_equals_the_reference():
    """The relevance of a hidden 4-D ReLU output, from the same backward pass as the heatmap."""
    torch.manual_seed(1)
    net = SmallNet()
    x = torch.randn(4, 3, 13, 13)
    target = torch.tensor([3, 0, 2, 1])
    eps = torch.tensor([0.0, 0.02, 0.2, 1.0])
    R, logits, Rf = explain(net, x, target, eps=eps, return_logits=True, feature_layer=-1)
    R_ref, Ra1_ref, Ra2_ref = reference_lrp(net, x, target, eps, features=True)
    assert Rf.shape == (4, 5, 6, 6)
    assert torch.allclose(R, R_ref, atol=1e-9) and torch.allclose(Rf, Ra2_ref, atol=1e-9), (Rf - Ra2_ref).abs().max()
    assert torch.allclose(logits, net(x))
    R2, Rf1 = explain(net, x, target, eps=eps, feature_layer=0)  # the first ReLU; without logits: (heatmap, R_f)
    assert torch.equal(R2, R) and torch.allclose(Rf1, Ra1_ref, atol=1e-9)
    assert torch.equal(explain(net, x, target, eps=eps, feature_layer=1)[1], Rf)
    # ε matters above the last layer too (the l1 ReLU)
    assert not torch.allclose(explain(net, x, target, eps=0.5, feature_layer=-1)[1], Rf, atol=1e-6)
    with pytest.raises(ValueError, match="gradcam"):
        explain(net, x, target, method="gradcam", feature_layer=-1)
    with pytest.raises(ValueError, match=r"feature_layer=2: the model computes 2 4-D ReLU outputs"):
        explain(net, x, target, feature_layer=2)
    # several layers at once: a tuple of the same relevances, from the same backward pass
    R3, both = explain(net, x, target, eps=eps, feature_layer=(-1, 0))
    assert isinstance(both, tuple) and len(both) == 2 and torch.equal(R3, R)
    assert torch.allclose(both[0], Ra2_ref, atol=1e-9) and torch.allclose(both[1], Ra1_ref, atol=1e-9)
    with pytest.raises(ValueError, match=r"feature_layer=\(0, 5\): the model computes 2 4-D ReLU outputs"):
        explain(net, x, target, feature_layer=(0, 5))

def test_hidden_relevance_alone_stops_the_backward_at_that_layer():
    """input_map=False: the same hidden relevance and the same second-order gradient, with no input map,
    and less arithmetic (the layers below are never explained)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    torch.manual_seed(2)
    net = SmallNet().double()
    x = torch.randn(4, 3, 13, 13, dtype=torch.float64)
    target = torch.tensor([3, 0, 2, 1])
    eps = torch.tensor([0.0, 0.02, 0.2, 1.0], dtype=torch.float64)
    _, Rf_ref = explain(net, x, target, eps=eps, feature_layer=-1)
    none, logits, Rf = explain(net, x, target, eps=eps, feature_layer=-1, input_map=False, return_logits=True)
    assert none is None and torch.allclose(Rf, Rf_ref, atol=1e-12) and torch.allclose(logits, net(x))
    # a loss on the hidden relevance: its gradient with respect to every parameter is the full pass's
    w = torch.randn_like(Rf_ref)
    grads = []
    for input_map in (True, False):
        Rf = explain(net, x, target, eps=eps, feature_layer=-1, create_graph=True, input_map=input_map)[1]
        grads.append(torch.autograd.grad((w * Rf).sum() + Rf.pow(2).sum(), list(net.parameters()),
                                         allow_unused=True, materialize_grads=True))
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(*grads))
    assert all(g.abs().sum() > 0 for g in grads[1][:2])  # the first layer learns from it too

    class ConvBackwards(TorchDispatchMode):  # counts the convolutions' backward passes
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += func is torch.ops.aten.convolution_backward.default
            return func(*args, **(kwargs or {}))

    def conv_backwards(input_map):
        with ConvBackwards() as counter:
            explain(net, x, target, eps=eps, feature_layer=-1, input_map=input_map)
        return counter.n
    assert (conv_backwards(True), conv_backwards(False)) == (2, 0)  # the relevance of c2's ReLU is above c2
    with pytest.raises(ValueError, match="input_map=False needs feature_layer"):
        explain(net, x, target, input_map=False)


class ResBNNet(nn.Module):
    """Conv-BN, one in-place ReLU module reused three times, a residual ``+=``."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.b1 = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.b2 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = self.relu(self.b1(self.c1(x)))
        out = self.b2(self.c2(h))
        out += h
        out = self.relu(out)
        out = F.max_pool2d(out, 2)
        return self.fc(self.relu(out).mean((2, 3)))


def _second_order_check(train_mode, loss_kind):
    torch.manual_seed(3)
    net = ResBNNet().train(train_mode)
    for b in (net.b1, net.b2):  # non-trivial running stats / affine for eval mode
        b.running_mean.uniform_(-0.3, 0.3)
        b.running_var.uniform_(0.5, 1.5)
        b.weight.data.uniform_(0.5, 1.5)
        b.bias.data.uniform_(-0.2, 0.2)
    x = torch.randn(4, 2, 8, 8)
    target = torch.tensor([0, 1, 2, 1])
    eps = torch.tensor([0.0, 0.02, 0.1, 0.5])
    T = torch.randn(4, 2, 8, 8)
    W = torch.randn(4, 2, 8, 8)
    params = [p for p in net.parameters()]

    Tf = torch.randn(4, 4, 4, 4)

    def loss_fn():
        if loss_kind == "feature":  # TEA's loss on the input map plus the feature-layer relevance
            R, Rf = explain(net, x, target, eps=eps, create_graph=True, feature_layer=-1)
            return teakit.heatmap_loss(R, T) + teakit.heatmap_loss(Rf, Tf, pyramid=False)
        R = explain(net, x, target, eps=eps, create_graph=True)
        if loss_kind == "tea":
            return teakit.heatmap_loss(R, T)
        return (R * W).sum() + 0.5 * (R ** 2).sum()

    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, allow_unused=True)  # fc.bias does not move R
    grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]
    h = 1e-6
    for trial in range(3):
        v = [torch.randn_like(p) for p in params]
        analytic = sum((g * d).sum() for g, d in zip(grads, v))
        with torch.no_grad():
            for p, d in zip(params, v):
                p.add_(h * d)
        up = loss_fn().item()
        with torch.no_grad():
            for p, d in zip(params, v):
                p.sub_(2 * h * d)
        down = loss_fn().item()
        with torch.no_grad():
            for p, d in zip(params, v):
                p.add_(h * d)
        numeric = (up - down) / (2 * h)
        rel = abs(numeric - analytic.item()) / max(abs(numeric), 1e-8)
        assert rel <= 1e-4, (trial, numeric, analytic.item(), rel)


@pytest.mark.parametrize("train_mode", [False, True])
@pytest.mark.parametrize("loss_kind", ["smooth", "tea", "feature"])
def test_second_order_gradients_match_finite_differences(train_mode, loss_kind):
    _second_order_check(train_mode, loss_kind)


def test_second_order_differs_from_naive_modified_backward():
    """The pitfall the engine avoids: a ReLU that keeps y/(y+ε) in the outer
    backward too gives different (wrong) parameter gradients.  This shows the
    finite-difference test above can tell the two apart."""
    torch.manual_seed(3)
    net = ResBNNet().eval()
    x, target = torch.randn(4, 2, 8, 8), torch.tensor([0, 1, 2, 1])
    W = torch.randn(4, 2, 8, 8)
    eps = 0.3

    class AlwaysModified(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            ctx.save_for_backward(z)
            return z.clamp_min(0)

        @staticmethod
        def backward(ctx, g):
            (z,) = ctx.saved_tensors
            y = z.clamp_min(0)
            return g * y / (y + eps + (y == 0).double())

    class Naive(ResBNNet):
        def forward(self, x):
            r = AlwaysModified.apply
            h = r(self.b1(self.c1(x)))
            out = r(self.b2(self.c2(h)) + h)
            return self.fc(r(F.max_pool2d(out, 2)).mean((2, 3)))

    naive = Naive().eval()
    naive.load_state_dict(net.state_dict())
    R = explain(net, x, target, eps=eps, create_graph=True)
    xg = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(naive(xg).gather(1, target[:, None]).sum(), xg, create_graph=True)
    R_naive = x * g
    assert torch.allclose(R, R_naive, atol=1e-10)  # same heatmap ...
    g1 = torch.autograd.grad((R * W).sum(), net.c1.weight)[0]
    g2 = torch.autograd.grad((R_naive * W).sum(), naive.c1.weight)[0]
    assert not torch.allclose(g1, g2, rtol=1e-3)   # ... but wrong second-order gradients


# ---------------------------------------------------------------- torchvision, integrity
def test_eps_zero_equals_autograd_gradxinput_on_resnet18():
    import torchvision
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    target = torch.tensor([3, 7])
    R = explain(net, x, target, eps=0.0)
    xg = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(net(xg).gather(1, target[:, None]).sum(), xg)
    assert torch.allclose(R, g * x, atol=1e-12, rtol=1e-10)
    assert (R - g * x).abs().max() <= 1e-12 * (g * x).abs().max()


def _plain_grads(net, x, y):
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()
    return [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("train_mode", [False, True])
def test_model_intact_after_explain(train_mode):
    torch.manual_seed(0)
    net = ResBNNet().train(train_mode)
    x, y = torch.randn(4, 2, 8, 8), torch.tensor([0, 1, 2, 1])
    ids = [id(p) for p in net.parameters()]
    keys = list(net.state_dict().keys())
    modules = [type(m) for m in net.modules()]
    relu_module = net.relu
    before_state = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(before_state)
    grads_before = _plain_grads(net, x, y)
    net.load_state_dict(before_state)  # undo the running-stat update of that forward
    out_before = net(x).detach()
    net.load_state_dict(before_state)

    R = explain(net, x, y, eps=0.05, create_graph=True)
    teakit.heatmap_loss(R, torch.randn_like(R)).backward()
    net.zero_grad(set_to_none=True)
    net.load_state_dict(before_state)

    assert [id(p) for p in net.parameters()] == ids
    assert list(net.state_dict().keys()) == keys
    assert [type(m) for m in net.modules()] == modules
    assert net.relu is relu_module and net.relu.inplace
    for m in net.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
    assert torch.equal(net(x).detach(), out_before)
    net.load_state_dict(before_state)
    for a, b in zip(grads_before, _plain_grads(net, x, y)):
        assert torch.equal(a, b)


def test_eval_mode_explain_changes_no_buffer_and_train_mode_updates_like_forward():
    torch.manual_seed(0)
    net = ResBNNet()
    x, y = torch.randn(4, 2, 8, 8), torch.tensor([0, 1, 2, 1])
    state = {k: v.clone() for k, v in net.state_dict().items()}
    net.eval()
    explain(net, x, y)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    # train mode: running statistics move exactly as an ordinary forward moves them
    net.train()
    explain(net, x, y)
    after_explain = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    net(x)
    for k, v in net.state_dict().items():
        assert torch.allclose(v, after_explain[k], atol=1e-12), k


def test_train_mode_heatmap_is_per_sample():
    """In training mode sample b's heatmap must not depend on the other samples'
    targets (batch statistics act as constants for the explanation)."""
    torch.manual_seed(0)
    net = ResBNNet().train()
    x = torch.randn(4, 2, 8, 8)
    R1 = explain(net, x, torch.tensor([0, 1, 2, 1]))
    R2 = explain(net, x, torch.tensor([0, 2, 0, 0]))
    assert torch.allclose(R1[0], R2[0], atol=1e-12)
    assert not torch.allclose(R1[1], R2[1])


def test_gradcam_shape_and_definition():
    import torchvision
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=5).eval()
    x, t = torch.randn(2, 3, 64, 64), torch.tensor([1, 4])
    cam = explain(net, x, t, method="gradcam")
    assert cam.shape == (2, 1, 64, 64) and (cam >= 0).all()
    # independent: capture layer4's output with a temporary forward hook
    feats = {}
    h = net.layer4.register_forward_hook(lambda m, i, o: feats.setdefault("A", o))
    logits = net(x)
    h.remove()
    A = feats["A"]
    (gA,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), A)
    ref = torch.relu((gA.mean((2, 3), keepdim=True) * A).sum(1, keepdim=True))
    ref = F.interpolate(ref, size=(64, 64), mode="bilinear", align_corners=False)
    assert torch.allclose(cam, ref, atol=1e-10)


def test_refuses_non_relu_activations_naming_the_layer():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU(), nn.Flatten(), nn.LazyLinear(2))
    x = torch.randn(2, 3, 6, 6)
    net(x)
    with pytest.raises(NotImplementedError, match=r"layer '1' is GELU"):
        explain(net, x, torch.tensor([0, 1]))

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(torch.sigmoid(x.flatten(1)))
    with pytest.raises(NotImplementedError, match="sigmoid"):
        explain(Functional(), torch.randn(2, 1, 2, 2), torch.tensor([0, 1]))


def test_bad_arguments_are_reported():
    net = SmallNet()
    x = torch.randn(2, 3, 13, 13)
    with pytest.raises(ValueError, match="method"):
        explain(net, x, torch.tensor([0, 1]), method="shap")
    with pytest.raises(ValueError, match="target"):
        explain(net, x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="outside"):
        explain(net, x, torch.tensor([0, 9]))
    with pytest.raises(ValueError, match="eps"):
        explain(net, x, torch.tensor([0, 1]), eps=torch.tensor([0.1, 0.1, 0.1]))
    with pytest.raises(ValueError, match="eps"):
        explain(net, x, torch.tensor([0, 1]), eps=-1.0)


def test_float32_and_no_grad_context():
    torch.manual_seed(0)
    net = SmallNet().float()
    x = torch.randn(2, 3, 13, 13, dtype=torch.float32)
    with torch.no_grad():
        R, logits = explain(net, x, torch.tensor([0, 1]), return_logits=True)
    assert R.dtype == torch.float32 and not R.requires_grad
    assert torch.allclose(logits, net(x), atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    net = ResBNNet().eval()
    x, t = torch.randn(4, 2, 8, 8), torch.tensor([0, 1, 2, 1])
    eps = torch.tensor([0.0, 0.02, 0.1, 0.5])
    R_cpu = explain(net, x, t, eps=eps)
    R_gpu = explain(net.cuda(), x.cuda(), t.cuda(), eps=eps.cuda(), create_graph=True)
    assert torch.allclose(R_cpu, R_gpu.detach().cpu(), atol=1e-9)
