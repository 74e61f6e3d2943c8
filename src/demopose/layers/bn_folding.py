"""Inference copies of convolutional networks with every ``Conv2d -> BatchNorm2d`` pair folded into one convolution.

At eval a BatchNorm is an affine map per channel, ``y = γ (x − μ) / sqrt(σ² + ε) + β``, so after a convolution
it folds into that convolution's weight and bias (the folding of :func:`demopose.models.gpv_fast.fold_linear_bn`,
per output channel of a kernel)::

    W' = W · γ / sqrt(σ² + ε),    b' = (b − μ) · γ / sqrt(σ² + ε) + β

:func:`fold_conv_bn` traces a module with ``torch.fx``, finds each BatchNorm whose only input is a convolution
used by nothing else, and returns a ``GraphModule`` in which the pair is one convolution; the original module
is not touched (its state dict, training and export are unchanged). With ``channels_last`` the copy also keeps
its activations in NHWC, the layout oneDNN's CPU convolutions compute in (an NCHW network pays a reorder
before and after every convolution). The time saved on the monocular detector is in BENCHMARKS.md ("Compiled
CPU kernels and the folded detector", ``benchmarks/detector_inference.py``).
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

__all__ = ["fold_conv_bn", "fold_conv_bn_weights"]


def fold_conv_bn_weights(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight ``(C_out, C_in / groups, kh, kw)`` and bias ``(C_out,)`` of ``bn(conv(x))`` at eval."""
    if bn.running_var is None or bn.running_mean is None:
        raise ValueError("fold_conv_bn_weights: the BatchNorm has no running statistics")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    shift = -bn.running_mean * scale
    if bn.affine:
        scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
    bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
    return conv.weight * scale.view(-1, 1, 1, 1), bias * scale + shift


def fold_conv_bn(module: nn.Module, channels_last: bool = False, concrete_args: dict | None = None) -> fx.GraphModule:
    """An inference copy of ``module`` (eval mode, no gradients) with its Conv2d -> BatchNorm2d pairs folded.

    Args:
        module: traceable by ``torch.fx.symbolic_trace`` (no control flow on tensor values).
        channels_last: store the copy's 4-D weights in NHWC (pass NHWC inputs too; see the module docstring).
        concrete_args: ``torch.fx.symbolic_trace``'s: e.g. ``{"feats": [fx.PH] * 3}`` for a forward taking a
            list of 3 tensors (the copy takes such a list too).

    Returns:
        A ``torch.fx.GraphModule`` computing ``module``'s forward at eval (equal up to float rounding).

    Raises:
        torch.fx.proxy.TraceError (or another tracing error): ``module`` cannot be traced.
    """
    with torch.no_grad():
        traced = fx.symbolic_trace(copy.deepcopy(module).eval(), concrete_args=concrete_args)
        modules = dict(traced.named_modules())
        # a module called at several places (or whose parameters are read directly) is shared: not folded
        uses: dict[str, int] = {}
        for node in traced.graph.nodes:
            if node.op == "call_module":
                uses[node.target] = uses.get(node.target, 0) + 1
            elif node.op == "get_attr":
                owner = node.target.rpartition(".")[0]
                uses[owner] = uses.get(owner, 0) + 2
        for node in list(traced.graph.nodes):
            if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
                continue
            (source,) = node.args if len(node.args) == 1 else (None,)
            if not (isinstance(source, fx.Node) and source.op == "call_module" and len(source.users) == 1
                    and type(modules[source.target]) is nn.Conv2d
                    and uses[source.target] == 1 and uses[node.target] == 1):
                continue
            bn, conv = modules[node.target], modules[source.target]
            if bn.running_mean is None or conv.padding_mode != "zeros":
                continue
            weight, bias = fold_conv_bn_weights(conv, bn)
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              conv.dilation, conv.groups, bias=True, device=weight.device, dtype=weight.dtype)
            fused.weight.copy_(weight)
            fused.bias.copy_(bias)
            _set_submodule(traced, source.target, fused)
            node.replace_all_uses_with(source)
            traced.graph.erase_node(node)
        traced.graph.lint()
        traced.delete_all_unused_submodules()
        traced.recompile()
        if channels_last:
            traced = traced.to(memory_format=torch.channels_last)
        traced.requires_grad_(False)
    return traced


def _set_submodule(root: nn.Module, target: str, module: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)
