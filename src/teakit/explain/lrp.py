"""LRP-ε as a modified gradient, exact and differentiable to second order.

For a ReLU network, LRP-ε relevance of the input equals ``x * g`` where ``g`` is
the gradient of the explained logit with respect to ``x``, computed with every
ReLU's backward derivative replaced by ``y / (y + ε)`` (``y`` the ReLU output).
Layers that are not followed by a ReLU (the last linear layer, average pooling,
residual branches before the add) then follow LRP-0, and max-pooling routes
relevance to the winning input.  ε = 0 gives Gradient×Input exactly.

How it is done, without touching the model:

* During the model's forward pass a :class:`torch.overrides.TorchFunctionMode`
  (active only inside :func:`forward_with_lrp`) routes every ReLU call
  (``nn.ReLU`` modules, reused or in-place, ``F.relu``, ``torch.relu``,
  ``Tensor.relu``) through :class:`_LRPReLU`, and every training-mode
  ``F.batch_norm`` through :func:`_batch_norm_train`.  Non-ReLU activations are
  refused with an error naming them, so a heatmap is never silently wrong.
* The graph nodes of one call share a small :class:`LRPCall` object.  While the
  heatmap is computed (``call.explaining`` is true) a ReLU node back-propagates
  ``g * y / (y + ε)``; afterwards it back-propagates the true ReLU derivative.
  So the outer backward of a loss on the heatmap (second order) sees the true
  derivative on the forward path, while the modified derivative recorded in
  the heatmap's own graph is differentiated exactly (one :class:`_EpsilonGrad`
  node per ReLU, on the ReLU's output, with its derivative written out;
  tested against the plain torch expression and finite differences).
* When the heatmap will itself be differentiated (``LRPCall.second_order``),
  every ``F.conv2d`` runs as :class:`_Conv2d`: while the heatmap is computed
  its backward is one :class:`_ConvInputGrad` node (input gradient only) whose
  derivative is written out as a convolution and a native weight gradient,
  cheaper on CPU than the native node's generic double backward.  Every
  ``F.max_pool2d`` likewise runs as :class:`_MaxPool2d`, whose input gradient
  :class:`_MaxPoolInputGrad` keeps the memory layout in its derivative.
* In training mode, batch statistics make the plain gradient of sample b's
  logit depend on the other samples.  The heatmap treats the statistics as
  constants (each sample is explained on its own, as in eval mode); the outer
  backward still differentiates through them.  Training-mode BatchNorm is one
  :class:`_BatchNormTrain` node (the native fused forward and backward).

Assumptions: dimension 0 of every activation is the batch (true for CNNs);
the model returns logits of shape (B, K).  The model object is never modified:
no hooks, no patched modules, no global switches.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _pair
from torch.overrides import TorchFunctionMode

_RELU_FUNCS = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}

# Activations whose LRP rule is not the ReLU one: refused, never approximated.
_REFUSED_FUNCS = {
    F.gelu: "GELU", F.silu: "SiLU", F.sigmoid: "sigmoid", torch.sigmoid: "sigmoid",
    torch.Tensor.sigmoid: "sigmoid", F.tanh: "tanh", torch.tanh: "tanh", torch.Tensor.tanh: "tanh",
    F.leaky_relu: "LeakyReLU", F.elu: "ELU", F.selu: "SELU", F.celu: "CELU", F.softplus: "Softplus",
    F.hardtanh: "Hardtanh", F.relu6: "ReLU6", F.hardswish: "Hardswish", F.hardsigmoid: "Hardsigmoid",
    F.mish: "Mish", F.prelu: "PReLU", F.glu: "GLU", F.softmax: "softmax", torch.softmax: "softmax",
    torch.Tensor.softmax: "softmax", F.log_softmax: "log_softmax", F.threshold: "threshold",
}
_REFUSED_MODULES = (
    nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.Softplus,
    nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.PReLU, nn.GLU, nn.Softmax, nn.LogSoftmax,
    nn.Threshold, nn.MultiheadAttention,
)


class LRPCall:
    """State of one explain call, shared by the graph nodes that call creates."""

    __slots__ = ("eps", "explaining", "record", "features", "second_order", "input")

    def __init__(self, eps: float | torch.Tensor, record: bool = False, second_order: bool = False):
        self.eps = eps              # float, or (B,) tensor of per-sample values
        self.explaining = True      # modified derivative while the heatmap is computed
        self.record = record        # keep 4-D ReLU outputs (for Grad-CAM)
        self.features: list[torch.Tensor] = []
        self.second_order = second_order  # the heatmap will be differentiated: convolutions as _Conv2d
        self.input: torch.Tensor | None = None  # the explained input (a constant: no gradient after)


def _per_sample(eps, like: torch.Tensor):
    if not torch.is_tensor(eps):
        return eps
    if like.shape[0] != eps.shape[0]:
        raise ValueError(
            f"per-sample eps has {eps.shape[0]} values but an activation has batch size "
            f"{like.shape[0]}; LRP assumes dimension 0 of every activation is the batch")
    return eps.view(-1, *([1] * (like.dim() - 1)))


class _LRPReLU(torch.autograd.Function):
    """ReLU whose backward is y/(y+ε) while explaining and the true derivative after.

    It keeps its output y, as the native ReLU does: y > 0 exactly where x > 0, so y serves every
    derivative, and y/(y+ε) needs no second ReLU pass."""

    @staticmethod
    def forward(ctx, x, call):
        ctx.call = call
        y = torch.relu(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        call = ctx.call
        if not call.explaining or (isinstance(call.eps, float) and call.eps == 0.0):
            # the true ReLU derivative, as the native ReLU backward computes it
            return torch.ops.aten.threshold_backward(g, y, 0), None
        eps = _per_sample(call.eps, y)
        if torch.is_tensor(eps):  # a per-sample ε = 0 becomes the smallest normal float: y/(y+ε) is then
            eps = eps.clamp_min(torch.finfo(eps.dtype).tiny)  # 0 where y = 0 and 1 (as for ε = 0) elsewhere
        if torch.is_grad_enabled():
            # create_graph: one node, differentiated exactly by _EpsilonGrad.  Its derivative reaches x
            # through y and this node's true derivative, which leaves it unchanged (it is 0 where y = 0).
            return _EpsilonGrad.apply(g, y, eps), None
        d = y + eps  # no graph: the same values, in place
        return torch.div(y, d, out=d).mul_(g), None


def _epsilon_ratio(y: torch.Tensor, eps):
    """``(y / d, d)`` with ``d = y + ε`` for a ReLU output ``y`` (ε > 0, see :meth:`_LRPReLU.backward`)."""
    d = y + eps
    return torch.div(y, d), d


class _EpsilonGrad(torch.autograd.Function):
    """``g · y/(y+ε)`` for a ReLU output ``y`` as one graph node, and its exact derivative.

    d/dg = y/(y+ε); d/dy = g · ε/(y+ε)² where y > 0, else 0 (the derivative of relu(x)/(relu(x)+ε)
    with respect to x, taken at y).  The same values as the
    plain torch expression ``g * (y / (y + ε))``, with fewer element-wise passes in the
    forward and the outer backward.  Exact to second order, as TEA needs; a third-order
    gradient through it raises (``once_differentiable``) rather than being wrong."""

    @staticmethod
    def forward(ctx, g, y, eps):
        ratio, d = _epsilon_ratio(y, eps)
        ctx.eps = eps
        ctx.save_for_backward(g, y, ratio, d)
        return g * ratio

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        g, y, ratio, d = ctx.saved_tensors
        grad_g = grad * ratio if ctx.needs_input_grad[0] else None
        grad_y = None
        if ctx.needs_input_grad[1]:
            # ε/d/d is finite everywhere (d ≥ ε > 0); threshold_backward keeps it where y > 0
            slope = torch.div(ctx.eps, d).div_(d).mul_(grad).mul_(g)
            grad_y = torch.ops.aten.threshold_backward(slope, y, 0)
        return grad_g, grad_y, None


class _BatchNormTrain(torch.autograd.Function):
    """Training-mode BatchNorm as one node: the native fused forward (which also updates the running
    statistics, as ``F.batch_norm`` does) and, after the heatmap, the native fused backward through the
    batch statistics.  The heatmap treats the statistics as constants, so while it is computed the input
    gradient is ``g · scale`` (``scale = weight / sqrt(var + eps)``); with a graph that is one
    :class:`_BatchNormInputGrad` node, whose derivative includes scale's dependence on x and weight."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps, call):
        y, mean, invstd = torch.ops.aten.native_batch_norm(x, weight, bias, running_mean, running_var,
                                                           True, momentum, eps)
        ctx.call, ctx.eps, ctx.has_bias = call, eps, bias is not None
        ctx.save_for_backward(x, weight, mean, invstd)
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight, mean, invstd = ctx.saved_tensors
        rest = (None,) * 5  # running_mean, running_var, momentum, eps, call
        if ctx.call.explaining:  # the input gradient only
            if not ctx.needs_input_grad[0]:
                grad_x = None
            elif torch.is_grad_enabled():
                grad_x = _BatchNormInputGrad.apply(g, x, weight, mean, invstd)
            else:
                grad_x = g * _channel_view(_scale(weight, invstd), g)
            return grad_x, None, None, *rest
        mask = [ctx.needs_input_grad[0], weight is not None and ctx.needs_input_grad[1],
                ctx.has_bias and ctx.needs_input_grad[2]]
        grads = torch.ops.aten.native_batch_norm_backward(g, x, weight, None, None, mean, invstd, True,
                                                          ctx.eps, mask)
        return (*[grad if m else None for grad, m in zip(grads, mask)], *rest)


def _scale(weight, invstd):
    return invstd if weight is None else weight * invstd


def _channel_view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(1, -1, *([1] * (like.dim() - 2)))


class _BatchNormInputGrad(torch.autograd.Function):
    """``g · scale`` with ``scale = weight · invstd(x)`` per channel, as one node, its derivative written
    out: d/dg = scale; with ``t = Σ u·g`` per channel (u the upstream gradient), d/dweight =
    ``t · invstd`` and d/dx = ``-t · scale · invstd² · (x - mean) / n`` (n values per channel; the mean
    drops out of var's derivative).  Tested against the autograd formulation and finite differences."""

    @staticmethod
    def forward(ctx, g, x, weight, mean, invstd):
        ctx.save_for_backward(g, x, weight, mean, invstd)
        return g * _channel_view(_scale(weight, invstd), g)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, u):
        g, x, weight, mean, invstd = ctx.saved_tensors
        scale = _scale(weight, invstd)
        grad_g = u * _channel_view(scale, u) if ctx.needs_input_grad[0] else None
        grad_x = grad_w = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            dims = [0] + list(range(2, u.dim()))
            t = (u * g).sum(dims)
            if ctx.needs_input_grad[1]:
                k = -t * scale * invstd.square() / (x.numel() / x.shape[1])
                grad_x = torch.addcmul(_channel_view(-mean * k, x), x, _channel_view(k, x))
            if ctx.needs_input_grad[2]:
                grad_w = t * invstd
        return grad_g, grad_x, grad_w, None, None


def _batch_norm_train(call, x, running_mean, running_var, weight, bias, momentum, eps):
    return _BatchNormTrain.apply(x, weight, bias, running_mean, running_var, momentum, eps, call)


def _batch_norm_eval(x, running_mean, running_var, weight, bias, eps):
    """Eval-mode BatchNorm as ``x·scale + shift`` (one addcmul): the same affine map as the native op, whose
    backward on CPU costs several times its forward; here the input gradient is one multiplication."""
    if running_mean is None or running_var is None:
        return F.batch_norm(x, running_mean, running_var, weight, bias, False, 0.0, eps)
    scale = _scale(weight, torch.rsqrt(running_var + eps))
    shift = -running_mean * scale if bias is None else bias - running_mean * scale
    return torch.addcmul(_channel_view(shift, x), x, _channel_view(scale, x))


class _Conv2d(torch.autograd.Function):
    """``F.conv2d`` whose backward, while a differentiable heatmap is computed, is one
    :class:`_ConvInputGrad` node (the input gradient only: the heatmap needs no weight gradient).

    After the heatmap (the outer backward) it is the native convolution backward, skipping the
    gradient of the explained input, which :func:`teakit.explain.explain` treats as a constant."""

    @staticmethod
    def forward(ctx, x, weight, bias, conf, call):
        ctx.conf, ctx.call, ctx.has_bias = conf, call, bias is not None
        ctx.save_for_backward(x, weight)
        return F.conv2d(x, weight, bias, *conf)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        call = ctx.call
        if call.explaining:
            if not ctx.needs_input_grad[0]:
                return None, None, None, None, None
            if torch.is_grad_enabled():
                return _ConvInputGrad.apply(g, weight, x, ctx.conf), None, None, None, None
            mask = [True, False, False]
        else:
            mask = [ctx.needs_input_grad[0] and x is not call.input, ctx.needs_input_grad[1],
                    ctx.has_bias and ctx.needs_input_grad[2]]
        grads = _conv_backward(g, x, weight, ctx.conf, mask, ctx.has_bias)
        return (*[grad if m else None for grad, m in zip(grads, mask)], None, None)


def _conv_backward(g: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, conf, mask, has_bias=False):
    """The native backward of ``conv2d(x, weight[, bias], *conf)`` at output gradient ``g``: the
    ``(input, weight, bias)`` gradients that ``mask`` asks for (None for the others)."""
    stride, padding, dilation, groups = conf
    return torch.ops.aten.convolution_backward(g, x, weight, [weight.shape[0]] if has_bias else None, stride,
                                               padding, dilation, False, [0] * len(stride), groups, mask)


class _ConvInputGrad(torch.autograd.Function):
    """The input gradient ``Jᵀg`` of ``conv2d(x, W)`` as one graph node, its derivative written out.

    ``Jᵀg`` is bilinear in (g, W) and does not depend on x.  For an upstream gradient u (shaped
    like x): d/dg = ``conv2d(u, W)`` and d/dW = the weight gradient of ``conv2d(u, W)`` at output
    gradient g: a forward convolution and a native weight gradient, cheaper on CPU than the
    generic double backward of the native node (tested against it and finite differences)."""

    @staticmethod
    def forward(ctx, g, weight, x, conf):
        ctx.conf = conf
        ctx.save_for_backward(g, weight)
        return _conv_backward(g, x, weight, conf, [True, False, False])[0]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, u):
        g, weight = ctx.saved_tensors
        grad_g = F.conv2d(u, weight, None, *ctx.conf) if ctx.needs_input_grad[0] else None
        grad_w = _conv_backward(g, u, weight, ctx.conf, [False, True, False])[1] if ctx.needs_input_grad[1] else None
        return grad_g, grad_w, None, None


def _conv2d(call, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if isinstance(padding, str) or x.dim() != 4:  # 'same'/'valid' padding, unbatched input: the native op
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    conf = (list(_pair(stride)), list(_pair(padding)), list(_pair(dilation)), int(groups))
    return _Conv2d.apply(x, weight, bias, conf, call)


class _MaxPool2d(torch.autograd.Function):
    """``F.max_pool2d`` whose backward, while a differentiable heatmap is computed, is one
    :class:`_MaxPoolInputGrad` node; otherwise the native backward (relevance to the winning input)."""

    @staticmethod
    def forward(ctx, x, conf, call):
        y, indices = torch.ops.aten.max_pool2d_with_indices(x, *conf)
        ctx.conf, ctx.call = conf, call
        ctx.save_for_backward(x, indices)
        return y

    @staticmethod
    def backward(ctx, g):
        x, indices = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        if ctx.call.explaining and torch.is_grad_enabled():
            return _MaxPoolInputGrad.apply(g, x, indices, ctx.conf), None, None
        return torch.ops.aten.max_pool2d_with_indices_backward(g, x, *ctx.conf, indices), None, None


class _MaxPoolInputGrad(torch.autograd.Function):
    """The input gradient of a max-pool (``g`` routed to the winning inputs) as one graph node.

    It is linear in ``g``, and the winners are constant where the gradient exists, so its derivative is
    the upstream gradient read at the winners, in the upstream gradient's own memory layout, and nothing
    for the pooled input.  The native node's double backward returns a contiguous gradient and a zero
    tensor for that input, which cost a pass each and, for a channels-last network, mix layouts in every
    later node of the backward."""

    @staticmethod
    def forward(ctx, g, x, indices, conf):
        ctx.save_for_backward(indices)
        return torch.ops.aten.max_pool2d_with_indices_backward(g, x, *conf, indices)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, u):
        (indices,) = ctx.saved_tensors
        return (_read_at(u, indices) if ctx.needs_input_grad[0] else None), None, None, None


def _read_at(u: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``u`` (B, C, H, W) read at a max-pool's ``indices`` (B, C, h, w; flat positions in H × W), in the
    layout of ``u``."""
    B, C, h, w = indices.shape
    if u.is_contiguous(memory_format=torch.channels_last) and not u.is_contiguous():
        u_ = u.permute(0, 2, 3, 1).reshape(B, -1, C)  # a view: (B, H·W, C)
        i_ = indices.permute(0, 2, 3, 1).reshape(B, h * w, C)
        return u_.gather(1, i_).view(B, h, w, C).permute(0, 3, 1, 2)
    return u.reshape(B, C, -1).gather(2, indices.reshape(B, C, -1)).view(B, C, h, w)


def _max_pool2d(call, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                return_indices=False):
    if return_indices or x.dim() != 4:  # the indices themselves, unbatched input: the native op
        return F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode,
                            return_indices=return_indices)
    stride = kernel_size if stride is None or (isinstance(stride, (list, tuple)) and not stride) else stride
    conf = (list(_pair(kernel_size)), list(_pair(stride)), list(_pair(padding)), list(_pair(dilation)),
            bool(ceil_mode))
    return _MaxPool2d.apply(x, conf, call)


class _ExplainMode(TorchFunctionMode):
    def __init__(self, call: LRPCall, lrp: bool):
        super().__init__()
        self.call = call
        self.lrp = lrp

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELU_FUNCS:
            x = args[0]
            y = _LRPReLU.apply(x, self.call) if self.lrp else torch.relu(x)
            if self.call.record and y.dim() == 4:
                self.call.features.append(y)
            return y
        if func is F.batch_norm:
            return self._batch_norm(*args, **kwargs)
        if func is F.conv2d and self.call.second_order:
            return _conv2d(self.call, *args, **kwargs)
        if func is F.max_pool2d and self.call.second_order:
            return _max_pool2d(self.call, *args, **kwargs)
        if func in _REFUSED_FUNCS and self.lrp:
            raise NotImplementedError(
                f"the model calls {_REFUSED_FUNCS[func]} ({getattr(func, '__name__', func)}); "
                "LRP-ε here supports ReLU networks only (and the model must return logits)")
        return func(*args, **kwargs)

    def _batch_norm(self, x, running_mean, running_var, weight=None, bias=None,
                    training=False, momentum=0.1, eps=1e-5):
        if not training:
            return _batch_norm_eval(x, running_mean, running_var, weight, bias, eps)
        return _batch_norm_train(self.call, x, running_mean, running_var, weight, bias,
                                 momentum if momentum is not None else 0.0, eps)


def check_supported(model: nn.Module) -> None:
    """Raise if the model holds an activation module that LRP-ε here cannot handle."""
    for name, module in model.named_modules():
        if isinstance(module, _REFUSED_MODULES):
            raise NotImplementedError(
                f"layer '{name or '<root>'}' is {type(module).__name__}: LRP-ε here supports "
                "ReLU networks only; replace it with nn.ReLU or use another explainer")


def forward_with_lrp(model: nn.Module, x: torch.Tensor, call: LRPCall, lrp: bool = True):
    """Run ``model(x)`` with ReLUs and training-mode BatchNorm routed through ``call``."""
    if lrp:
        check_supported(model)
    with _ExplainMode(call, lrp):
        return model(x)
