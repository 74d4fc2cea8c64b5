"""The benchmark's baseline: the reference implementation's habits, run on pcdarts's own parameters.

The official PC-DARTS code computes every candidate op in full (a ReLU per op, the ``none`` op's zeros,
max-pool indices and each op's BN output kept for backward), joins each edge (cat, then channel shuffle)
before weighting it, uses PyTorch's own kernels (NCHW pooling, depthwise backward), takes a full
backward in the arch step and steps the optimiser tensor by tensor. ``to_reference`` re-classes a
pcdarts model's modules so their forward does exactly that; parameters, buffers and state-dict keys are
unchanged, so both compute the same function (the tests bound the difference in float64) and the
benchmark compares like with like. Nothing in the library imports this module.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..nas.candidates import OPS
from ..nas.nb201_search import NB201SearchCell
from ..nas.ops import AvgPool3x3, DepthwiseConv2d, FactorizedReduce, MaxPool3x3
from ..nas.supernet import MixedOp, PartialEdge, SearchCell, SearchNetwork, channel_shuffle


class ReferenceMixedOp(MixedOp):
    """``sum(w * op(x))`` over all ops of the space, the zeros of ``none`` included."""

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = None
        for k, name in enumerate(self.names):  # the zero ops first, as the reference's sum starts with none
            if OPS[name].zero:
                term = weights[k] * x[:, :, :: self.stride, :: self.stride].mul(0.0)
                out = term if out is None else out + term
        for k, op in zip(self.op_index, self.ops):
            out = weights[k] * op(x) if out is None else out + weights[k] * op(x)
        return out


class ReferencePartialEdge(PartialEdge):
    """Slice, mixed op, cat with the (pooled) bypass, then channel shuffle: two full-width copies."""

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.k == 1:
            return self.op(x, weights)
        y = self.op(x[:, : self.c_part], weights)
        bypass = x[:, self.c_part :]
        if self.stride == 2:
            bypass = F.max_pool2d(bypass, 2, 2, ceil_mode=True)
        if self.mode == "shift":
            return torch.cat([bypass, y], dim=1)
        return channel_shuffle(torch.cat([y, bypass], dim=1), self.k)


class ReferenceSearchCell(SearchCell):
    """Each node is ``sum(beta_j * edge_j(h_j))`` over whole edge outputs."""

    def forward(
        self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor, edge_w: torch.Tensor | None
    ) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.steps):
            terms = [self.edges[offset + j](h, weights[offset + j]) for j, h in enumerate(states)]
            if edge_w is not None:
                terms = [edge_w[offset + j] * t for j, t in enumerate(terms)]
            offset += len(states)
            states.append(sum(terms[1:], terms[0]))
        return torch.cat(states[-self.multiplier :], dim=1)


class ReferenceFactorizedReduce(FactorizedReduce):
    """ReLU on the whole map, then both stride-2 convs, the second on a padded, shifted copy."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


_PLAIN = {MaxPool3x3: nn.MaxPool2d, AvgPool3x3: nn.AvgPool2d, DepthwiseConv2d: nn.Conv2d}
_SUPERNET = {
    FactorizedReduce: ReferenceFactorizedReduce,
    MixedOp: ReferenceMixedOp,
    PartialEdge: ReferencePartialEdge,
    SearchCell: ReferenceSearchCell,
}


class EdgeByEdgeSearchCell(SearchCell):
    """pcdarts's own cell with every edge computed on its own: what ``bench fanout`` measures the fan-out against."""

    def _fans_out(self, h: torch.Tensor) -> bool:
        return False


class EdgeByEdgeNB201Cell(NB201SearchCell):
    """The NAS-Bench-201 search cell with every edge computed on its own."""

    def _fans_out(self, h: torch.Tensor) -> bool:
        return False


def to_edge_by_edge(model: nn.Module) -> nn.Module:
    """Re-class ``model``'s search cells in place so they never fan out; returns ``model``."""
    for m in model.modules():
        if type(m) is SearchCell:
            m.__class__ = EdgeByEdgeSearchCell
        elif type(m) is NB201SearchCell:
            m.__class__ = EdgeByEdgeNB201Cell
    return model


def to_reference(model: nn.Module) -> nn.Module:
    """Re-class ``model``'s modules in place to the plain forms above; returns ``model``.

    Works on a ``SearchNetwork`` and on a final ``Network`` (which only has the kernels to swap).
    """
    for m in model.modules():
        new = _PLAIN.get(type(m)) or _SUPERNET.get(type(m))
        if new is not None:
            m.__class__ = new
    return model


def reference_arch_step(net: SearchNetwork, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    """The reference's first-order arch step: a full backward (weight gradients computed and left), Adam."""
    optimizer.zero_grad()
    F.cross_entropy(net(x), y).backward()
    optimizer.step()


AUTOCAST_BOUNDS = {"logits": 0.05, "arch": 0.4, "weights": 0.25, "stats": 0.01}
"""Largest relative errors against fp32 that ``autocast_errors`` accepts under bf16, for either way of running
the cell; measured on CPU (C16, 5 cells, K=4, batch 8 at 16x16): logits 0.014, alpha/beta gradients 0.10-0.12,
weight gradients 0.11, moves of the running statistics 0.001 (docs/BENCHMARKS.md)."""


def autocast_errors(net: SearchNetwork, x: torch.Tensor, y: torch.Tensor, precision: str = "bf16") -> dict[str, Any]:
    """How far ``net`` under autocast lands from fp32, fanned out and edge by edge, on copies of ``net``.

    Relative errors (norm of the difference over the norm of the fp32 value) of the logits, the alpha/beta
    gradients, the weight gradients and the move of the BN running statistics (after minus before) in one
    training-mode pass: the fan-out runs under autocast because it rounds no worse than the cell run edge by
    edge (tests/nas/test_fanout.py, scripts/gpu_check.py). The fp32 reference runs with TF32 off on CUDA.
    ``fanned_cells`` counts the cell forwards that fanned out under autocast.
    """
    from ..runs.engine import autocast

    before = _flat(_running(net))

    def run(model: SearchNetwork, prec: str) -> dict[str, torch.Tensor]:
        with autocast(prec, x.device):
            logits = model(x).float()
        arch, weights = model.arch_parameters(), model.weight_parameters()
        grads = torch.autograd.grad(F.cross_entropy(logits, y), arch + weights)
        moved = _flat(_running(model)) - before
        return {"logits": logits.detach(), "arch": _flat(grads[: len(arch)]), "weights": _flat(grads[len(arch) :])} | {
            "stats": moved
        }

    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        ref = run(copy.deepcopy(net).train(), "fp32")
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    fanned: list[int] = []
    fanned_net = copy.deepcopy(net).train()
    for cell in fanned_net.cells:
        cell.register_forward_hook(lambda m, a, out: fanned.append(int(m._fans_out(a[1]))))
    out: dict[str, Any] = {"precision": precision}
    for name, model in (("fan-out", fanned_net), ("edge by edge", to_edge_by_edge(copy.deepcopy(net).train()))):
        got = run(model, precision)
        out[name] = {key: float((got[key] - ref[key]).norm() / ref[key].norm()) for key in ref}
    out["fanned_cells"] = sum(fanned)
    return out


def _running(model: nn.Module) -> list[torch.Tensor]:
    return [b for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var"))]


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().float().flatten() for t in tensors])
