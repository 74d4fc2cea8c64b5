"""The architecture step of the bilevel optimisation (DARTS Sec. 2.3, PC-DARTS Sec. 3).

First order (the PC-DARTS default): the gradient of the validation loss with
respect to alpha/beta only. Gradients are asked for those four tensors alone,
so no weight gradient is computed and thrown away as in the reference code.
Second order ("unrolled"): the gradient at the weights after one virtual SGD
step, with the Hessian-vector product by finite differences, all through
``torch.func.functional_call`` on the one model (no deep copy).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .supernet import SearchNetwork


def beta_decay_loss(model: SearchNetwork) -> torch.Tensor:
    """Beta-Decay regularisation (Ye et al., CVPR 2022): per cell, the mean over edges of logsumexp(alpha).

    Its gradient is softmax(alpha), so it pulls every op's alpha down in proportion to its share:
    dominant alphas (the parameter-free ops of a collapsing search) shrink most, which keeps the
    softmax from saturating early. The normal and reduction cells' terms are added.
    """
    total = torch.logsumexp(model.alphas_normal, dim=-1).mean()
    if hasattr(model, "alphas_reduce"):  # the NAS-Bench-201 cell has one alpha
        total = total + torch.logsumexp(model.alphas_reduce, dim=-1).mean()
    return total


class Architect:
    def __init__(
        self,
        model: SearchNetwork,
        *,
        lr: float,
        betas: tuple[float, float] = (0.5, 0.999),
        weight_decay: float = 1e-3,
        unrolled: bool = False,
        grad_clip: float = 0.0,
    ):
        self.model = model
        self.unrolled = unrolled
        self.params = model.arch_parameters()
        self.optimizer = torch.optim.Adam(self.params, lr=lr, betas=betas, weight_decay=weight_decay)
        self.grad_clip = grad_clip
        self.reg_weight = 0.0  # weight of the Beta-Decay term this epoch (beta-DARTS); set by the search loop

    def step(
        self,
        x_val: torch.Tensor,
        y_val: torch.Tensor,
        *,
        x_train: torch.Tensor | None = None,
        y_train: torch.Tensor | None = None,
        eta: float = 0.0,
        w_optimizer: torch.optim.Optimizer | None = None,
    ) -> torch.Tensor:
        """One Adam step on alpha/beta; returns the (detached) validation loss."""
        if self.unrolled:
            if x_train is None or y_train is None or w_optimizer is None:
                raise ValueError("the unrolled arch step needs the train batch and the weight optimizer")
            loss, grads = self._unrolled_grads(x_train, y_train, x_val, y_val, eta, w_optimizer)
            if self.reg_weight:
                reg = torch.autograd.grad(self.reg_weight * beta_decay_loss(self.model), self.params, allow_unused=True)
                grads = [g if r is None else g + r for g, r in zip(grads, reg)]
        else:
            loss = F.cross_entropy(self.model(x_val), y_val)
            objective = loss + self.reg_weight * beta_decay_loss(self.model) if self.reg_weight else loss
            # every arch parameter must reach the loss: a None gradient is a bug, not a zero
            grads = list(torch.autograd.grad(objective, self.params))
        if dist.is_available() and dist.is_initialized():
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat /= dist.get_world_size()
            grads = list(torch.split(flat, [p.numel() for p in self.params]))
        for p, g in zip(self.params, grads):
            p.grad = g.view_as(p).to(p.dtype)
        if self.grad_clip:  # the official ImageNet search clips the arch gradient at 5
            nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def _unrolled_grads(
        self,
        x_t: torch.Tensor,
        y_t: torch.Tensor,
        x_v: torch.Tensor,
        y_v: torch.Tensor,
        eta: float,
        w_optimizer: torch.optim.Optimizer,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model = self.model
        if getattr(model, "recompute", "none") != "none":  # recomputing would run at the real weights, not w'
            raise ValueError("the unrolled arch step cannot run with recompute on: set model.recompute = 'none'")
        arch_ids = {id(p) for p in self.params}
        named = [(n, p) for n, p in model.named_parameters() if id(p) not in arch_ids]
        names = [n for n, _ in named]
        weights = [p for _, p in named]
        arch = {n: p for n, p in model.named_parameters() if id(p) in arch_ids}
        # Virtual steps must not move BN running statistics: run them on copies of the buffers.
        buffers = {n: b.clone() for n, b in model.named_buffers()}

        def loss_at(w: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            params = dict(zip(names, w))
            params.update(arch)
            return F.cross_entropy(functional_call(model, (params, buffers), (x,)), y)

        group = w_optimizer.param_groups[0]
        momentum, wd = group.get("momentum", 0.0), group.get("weight_decay", 0.0)
        g_train = torch.autograd.grad(loss_at(weights, x_t, y_t), weights, allow_unused=True)
        w_prime = []
        for p, g in zip(weights, g_train):
            g = torch.zeros_like(p) if g is None else g
            buf = w_optimizer.state.get(p, {}).get("momentum_buffer")
            step = g + wd * p.detach() + (momentum * buf if buf is not None else 0.0)
            w_prime.append((p.detach() - eta * step).requires_grad_(True))
        loss_v = loss_at(w_prime, x_v, y_v)
        grads = torch.autograd.grad(loss_v, self.params + w_prime, allow_unused=True)
        d_arch = [torch.zeros_like(p) if g is None else g for p, g in zip(self.params, grads[: len(self.params)])]
        d_w = [torch.zeros_like(p) if g is None else g for p, g in zip(w_prime, grads[len(self.params) :])]
        r = 1e-2 / torch.cat([d.reshape(-1) for d in d_w]).norm().clamp_min(1e-12)
        w_plus = [p.detach() + r * d for p, d in zip(weights, d_w)]
        w_minus = [p.detach() - r * d for p, d in zip(weights, d_w)]
        g_plus = torch.autograd.grad(loss_at(w_plus, x_t, y_t), self.params, allow_unused=True)
        g_minus = torch.autograd.grad(loss_at(w_minus, x_t, y_t), self.params, allow_unused=True)
        out = []
        for d, gp, gm, p in zip(d_arch, g_plus, g_minus, self.params):
            gp = torch.zeros_like(p) if gp is None else gp
            gm = torch.zeros_like(p) if gm is None else gm
            out.append(d - eta * (gp - gm) / (2 * r))
        return loss_v.detach(), out
