"""A frozen model's eval-mode BatchNorm folded into the convolution before it.

In eval mode a BatchNorm after a convolution is a fixed affine map per
channel, so the pair equals one convolution with scaled weights and a shifted
bias.  The folded copy computes the same logits, and the same LRP-ε heatmaps
(every ReLU sees the same input), with one layer fewer to run forward and
backward for each folded pair: cheaper maps of a frozen teacher.

:class:`FoldedModel` keeps that copy for a model that is not being trained and
never hands out a stale one: on every call it compares each parameter's and
buffer's identity, storage, device, dtype and in-place version counter (an
optimizer step, ``load_state_dict`` or ``.to()`` changes one of them) and the
modules' training flags with those the copy was built from, and builds it
again if any differ.  A model in training mode, or one that ``torch.fx`` cannot
trace, is returned as it is.

Assumptions: only ``nn.Conv2d`` → ``nn.BatchNorm2d`` pairs whose convolution
output feeds nothing but that BatchNorm, each module called once in the graph,
are folded; everything else runs unchanged.
"""
from __future__ import annotations

import copy
from collections import Counter

import torch
import torch.fx as fx
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batchnorm", "FoldedModel"]


def _set_submodule(root: nn.Module, target: str, module: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def fold_batchnorm(model: nn.Module) -> nn.Module | None:
    """A traced copy of ``model`` (in eval mode) with every foldable conv→BatchNorm pair
    made one convolution, or None when the model is in training mode or cannot be traced.
    ``model`` itself is not changed."""
    if any(m.training for m in model.modules()):
        return None
    try:
        graph_module = fx.symbolic_trace(copy.deepcopy(model))
    except Exception:  # data-dependent control flow and the like: explain the model as it is
        return None
    modules = dict(graph_module.named_modules())
    calls = Counter(n.target for n in graph_module.graph.nodes if n.op == "call_module")
    for node in list(graph_module.graph.nodes):
        bn = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(bn, nn.BatchNorm2d) or len(node.args) != 1 or node.kwargs:
            continue
        conv_node = node.args[0]
        conv = modules.get(conv_node.target) if isinstance(conv_node, fx.Node) and conv_node.op == "call_module" else None
        if (not isinstance(conv, nn.Conv2d) or len(conv_node.users) != 1 or calls[conv_node.target] != 1
                or calls[node.target] != 1 or not bn.track_running_stats or bn.running_mean is None):
            continue
        fused = fuse_conv_bn_eval(conv, bn)
        if conv.weight.is_contiguous(memory_format=torch.channels_last):
            fused.weight.data = fused.weight.data.contiguous(memory_format=torch.channels_last)
        fused.requires_grad_(False)
        _set_submodule(graph_module, conv_node.target, fused)
        node.replace_all_uses_with(conv_node)
        graph_module.graph.erase_node(node)
    graph_module.graph.lint()
    graph_module.recompile()
    graph_module.delete_all_unused_submodules()  # the folded BatchNorms
    return graph_module


def _state(model: nn.Module) -> tuple:
    tensors = [*model.parameters(), *model.buffers()]
    return (tuple((id(t), t.data_ptr(), t._version, t.device, t.dtype) for t in tensors)
            + tuple(m.training for m in model.modules()))


class FoldedModel:
    """``get(model)``: the BatchNorm-folded copy of ``model`` (see :func:`fold_batchnorm`),
    built once and rebuilt whenever the model's weights, buffers, device, dtype or mode
    changed; ``model`` itself when it cannot be folded.  Not an ``nn.Module``: the copy
    never enters a state dict, and it is dropped when pickled."""

    def __init__(self):
        self._model_id = None
        self._key = None
        self._copy = None

    def get(self, model: nn.Module) -> nn.Module:
        key = _state(model)
        if self._model_id != id(model) or self._key != key:
            self._copy = fold_batchnorm(model)
            self._model_id, self._key = id(model), key
        return model if self._copy is None else self._copy

    def __getstate__(self) -> dict:
        return {"_model_id": None, "_key": None, "_copy": None}

    def __deepcopy__(self, memo) -> "FoldedModel":
        return FoldedModel()
