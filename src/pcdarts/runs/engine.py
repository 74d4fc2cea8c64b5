"""One epoch of search, one epoch of training, one evaluation pass. No argv, no files.

Metrics are summed on the device and read once per epoch, so the hot loop has
no host synchronisation.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import BatchStream, FolderStream
from ..nas.architect import Architect


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; the run stops before anything is saved."""


def sgd_impl(device: torch.device) -> dict[str, bool]:
    """The SGD implementation for a device: fused on CUDA (its GradScaler step then checks for inf on the
    device, without a host sync each step), the multi-tensor loop elsewhere."""
    return {"fused": True} if device.type == "cuda" else {"foreach": True}


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision for both the weight and the arch forward passes (fp32: no-op)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def cosine_lr(epoch: int, epochs: int, base: float, minimum: float = 0.0) -> float:
    """Cosine annealing per epoch (as torch's CosineAnnealingLR with T_max = epochs)."""
    return minimum + 0.5 * (base - minimum) * (1 + math.cos(math.pi * epoch / epochs))


def linear_warmup_decay_lr(epoch: int, epochs: int, base: float, warmup: int, tail: int = 5) -> float:
    """The official ImageNet schedule: linear warm-up for ``warmup`` epochs, then linear decay.

    The decay is ``base * (E - tail - e) / (E - tail)`` while more than ``tail`` epochs remain, then a
    gentler ``base * (E - e) / ((E - tail) * tail)`` so the last epochs do not end at exactly 0.
    """
    if epoch < warmup:
        return base * (epoch + 1) / warmup
    if epochs - epoch > tail:
        return base * (epochs - tail - epoch) / (epochs - tail)
    return base * (epochs - epoch) / (max(1, epochs - tail) * tail)


def new_accumulator(device: torch.device) -> dict[str, torch.Tensor]:
    z = lambda: torch.zeros((), device=device, dtype=torch.float64)  # noqa: E731
    return {"loss": z(), "correct": z(), "n": z(), "arch_loss": z(), "arch_n": z(), "steps": z()}


def epoch_stats(acc: dict[str, torch.Tensor]) -> dict[str, float]:
    v = {k: float(t) for k, t in acc.items()}
    out = {"loss": v["loss"] / max(v["n"], 1), "accuracy": v["correct"] / max(v["n"], 1), "steps": int(v["steps"])}
    if v["arch_n"]:
        out["arch_loss"] = v["arch_loss"] / v["arch_n"]
    return out


StepHook = Callable[[int], bool]  # called after each step with its index; True = stop now


def optimizer_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    params: list[torch.Tensor],
    grad_clip: float,
    scaler: torch.amp.GradScaler | None = None,
    *,
    inputs: list[torch.Tensor] | None = None,
) -> None:
    """Backward, clip, step: the one weight update of both loops (fp16 grad scaling when a scaler is given).

    ``inputs`` limits the backward to those tensors (the search's weights, skipping alpha/beta).
    """
    scaler = scaler or _NO_SCALING
    scaler.scale(loss).backward(inputs=inputs)
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()


_NO_SCALING = torch.amp.GradScaler("cpu", enabled=False)  # a no-op scaler: identical arithmetic to no scaling


def count_step(
    acc: dict[str, torch.Tensor],
    loss: torch.Tensor,
    logits: torch.Tensor,
    y: torch.Tensor,
    after_step: StepHook | None,
    stream: BatchStream | FolderStream,
) -> bool:
    """Accumulate a step's metrics on the device; True when ``after_step`` asks to stop."""
    acc["loss"] += loss.detach() * len(y)
    acc["correct"] += (logits.detach().argmax(1) == y).sum()
    acc["n"] += len(y)
    acc["steps"] += 1
    return after_step is not None and after_step(int(stream.pos))


def search_step(
    model: nn.Module,
    forward: nn.Module,
    architect: Architect,
    w_optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    val: tuple[torch.Tensor, torch.Tensor] | None,
    *,
    grad_clip: float,
    eta: float = 0.0,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    weights: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One search step: the arch step on the ``val`` batch (skipped when None: warm-up), then the weight step.

    Returns the weight step's loss and logits and the arch loss (None when skipped). The benchmark times
    this very function.
    """
    arch_loss = None
    if val is not None:
        xv, yv = val
        with autocast(precision, xv.device):
            arch_loss = architect.step(xv, yv, x_train=x, y_train=y, eta=eta, w_optimizer=w_optimizer)
    weights = model.weight_parameters() if weights is None else weights
    w_optimizer.zero_grad(set_to_none=True)
    with autocast(precision, x.device):
        logits = forward(x)
        loss = F.cross_entropy(logits, y)
    # alpha/beta gradients are not needed here; DDP's gradient hooks need a plain backward (the arch
    # step overwrites alpha/beta gradients anyway)
    optimizer_step(loss, w_optimizer, weights, grad_clip, scaler, inputs=weights if forward is model else None)
    return loss, logits, arch_loss


def search_epoch(
    model: nn.Module,
    forward: nn.Module,
    architect: Architect,
    w_optimizer: torch.optim.Optimizer,
    train: BatchStream | FolderStream,
    val: BatchStream | FolderStream,
    *,
    arch_active: bool,
    grad_clip: float,
    eta: float,
    acc: dict[str, torch.Tensor],
    after_step: StepHook | None = None,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
) -> bool:
    """Alternate one arch step (val batch) and one weight step (train batch). Returns True if stopped early."""
    weights = model.weight_parameters()
    model.train()
    for x, y in train.epoch():
        val_batch = val.next_batch() if arch_active else None
        loss, logits, arch_loss = search_step(
            model,
            forward,
            architect,
            w_optimizer,
            x,
            y,
            val_batch,
            grad_clip=grad_clip,
            eta=eta,
            precision=precision,
            scaler=scaler,
            weights=weights,
        )
        if arch_loss is not None:
            acc["arch_loss"] += arch_loss * len(val_batch[1])
            acc["arch_n"] += len(val_batch[1])
        if count_step(acc, loss, logits, y, after_step, train):
            return True
    return False


def train_step(
    forward: nn.Module,
    optimizer: torch.optim.Optimizer,
    params: list[torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    grad_clip: float,
    auxiliary_weight: float,
    label_smoothing: float = 0.0,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the final network (auxiliary loss, label smoothing, clipping): its loss and logits."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(precision, x.device):
        out = forward(x)
        logits, aux = out if isinstance(out, tuple) else (out, None)
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        if aux is not None and auxiliary_weight > 0:
            loss = loss + auxiliary_weight * F.cross_entropy(aux, y, label_smoothing=label_smoothing)
    optimizer_step(loss, optimizer, params, grad_clip, scaler)
    return loss, logits


def train_epoch(
    model: nn.Module,
    forward: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: BatchStream | FolderStream,
    *,
    grad_clip: float,
    auxiliary_weight: float,
    label_smoothing: float,
    acc: dict[str, torch.Tensor],
    after_step: StepHook | None = None,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
) -> bool:
    """One epoch of the final network."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    for x, y in train.epoch():
        loss, logits = train_step(
            forward,
            optimizer,
            params,
            x,
            y,
            grad_clip=grad_clip,
            auxiliary_weight=auxiliary_weight,
            label_smoothing=label_smoothing,
            precision=precision,
            scaler=scaler,
        )
        if count_step(acc, loss, logits, y, after_step, train):
            return True
    return False


@torch.no_grad()
def evaluate(model: nn.Module, stream: BatchStream | FolderStream) -> dict[str, Any]:
    """Loss, top-1 and top-5 accuracy (fractions) over one full pass of ``stream``."""
    was = model.training
    model.eval()
    dev = stream.device
    loss = torch.zeros((), device=dev, dtype=torch.float64)
    top1 = torch.zeros((), device=dev, dtype=torch.float64)
    top5 = torch.zeros((), device=dev, dtype=torch.float64)
    per_class = seen = None  # top-1 hits and images per class
    n = 0
    stream.reset()
    for x, y in stream.epoch():
        logits = model(x)
        logits = logits[0] if isinstance(logits, tuple) else logits
        loss += F.cross_entropy(logits, y, reduction="sum")
        k = min(5, logits.shape[1])
        topk = logits.topk(k, dim=1).indices  # (N, k)
        hit = topk == y[:, None]
        top1 += hit[:, 0].sum()
        top5 += hit.any(dim=1).sum()
        c = logits.shape[1]
        counts = torch.bincount(y, minlength=c)
        hits = torch.bincount(y, weights=hit[:, 0].double(), minlength=c)  # no boolean indexing: no device sync
        seen, per_class = (counts, hits) if seen is None else (seen + counts, per_class + hits)
        n += len(y)
    model.train(was)
    accs = [] if seen is None else [round(h) / s if s else None for h, s in zip(per_class.tolist(), seen.tolist())]
    return {
        "loss": float(loss) / max(n, 1),
        "top1": float(top1) / max(n, 1),
        "top5": float(top5) / max(n, 1),
        "n": n,
        "per_class": accs,  # top-1 accuracy of each class (None where it has no image)
    }


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def epoch_line(
    kind: str,
    record: dict[str, Any],
    epoch: int,
    epochs: int,
    elapsed: float,
    start_epoch: int,
    cost: Callable[[int], float] | None = None,
) -> str:
    """One short console line per epoch: losses, accuracies, collapse count, time and ETA (epochs counted from 1).

    ``cost(e)`` is epoch e's relative cost (a search's arch epochs cost about twice its warm-up epochs);
    ``elapsed`` covers epochs 0..epoch, a resumed run's earlier time included.
    """
    parts = [f"{kind} epoch {epoch + 1}/{epochs}", f"loss {record['train_loss']:.3f} acc {record['train_acc']:.3f}"]
    if "val_acc" in record:
        parts.append(f"val loss {record['val_loss']:.3f} acc {record['val_acc']:.3f}")
    if "arch_loss" in record:
        parts.append(f"arch loss {record['arch_loss']:.3f}")
    if "none_edges" in record:  # the NAS-Bench-201 cell: six edges, each kept
        parts.append(f"param-free ops {record['param_free_normal']}/6, none {record['none_edges']}/6")
    elif "param_free_normal" in record:
        parts.append(f"param-free ops {record['param_free_normal']}/8 normal")
    if record.get("ranks_agree"):
        parts.append("ranks agree on alpha/beta")
    if cost is None:
        eta = elapsed / max(epoch + 1, 1) * (epochs - epoch - 1)
    else:
        spent = sum(cost(e) for e in range(epoch + 1))
        eta = elapsed / max(spent, 1e-9) * sum(cost(e) for e in range(epoch + 1, epochs))
    parts.append(f"{_duration(record['epoch_seconds'])}" + (f", ETA {_duration(eta)}" if epoch + 1 < epochs else ""))
    return " | ".join(parts)


def check_finite(metrics: dict[str, float], what: str, *, checkpoint: bool = True) -> None:
    """Stop on a NaN or infinite loss; ``checkpoint``: whether a checkpoint from an earlier epoch exists."""
    for key in ("loss", "arch_loss"):
        if key in metrics and not math.isfinite(metrics[key]):
            if checkpoint:
                raise NonFiniteLoss(
                    f"{what} {key} became {metrics[key]}; the last good checkpoint is kept: "
                    "lower the learning rate or the grad clip and resume"
                )
            raise NonFiniteLoss(
                f"{what} {key} became {metrics[key]} in the first epoch, before any checkpoint: lower the learning "
                "rate or the grad clip and start again (--overwrite)"
            )
