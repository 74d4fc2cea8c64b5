"""Final networks built from a genotype and trained from scratch (DARTS Sec. 3.3 protocol)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..choices import check_choice
from ..errors import ConfigError
from .candidates import OPS
from .genotype import Genotype
from .nb201 import CELL, NB201Genotype, NB201Network
from .ops import FactorizedReduce, ReLUConvBN
from .space import reduction_cells


def drop_path(x: torch.Tensor, drop_prob: float | torch.Tensor, training: bool) -> torch.Tensor:
    """Zero whole samples of a branch with probability ``drop_prob``, rescaling the rest.

    Pure and device-agnostic; draws from the default generator, never in place. ``drop_prob`` may be a
    0-dim tensor (a compiled network: a value that changes every epoch must not be a constant of the graph).
    """
    if not training or (not isinstance(drop_prob, torch.Tensor) and drop_prob <= 0.0):
        return x
    keep = 1.0 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Drop-path wrapper whose probability the owning network sets (``Network.set_drop_path``)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        self.drop_prob = 0.0
        # the same value as a tensor, for torch.compile: a float attribute that changes every epoch is guarded
        # on, so each epoch would compile again (until the recompile limit, then run eager without a word)
        self.register_buffer("drop_prob_t", torch.zeros(()), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():  # eager keeps the float: its results stay bit for bit what they were
            return drop_path(self.module(x), self.drop_prob_t, self.training and self.drop_prob > 0)
        return drop_path(self.module(x), self.drop_prob, self.training)


def set_drop_path(model: nn.Module, prob: float) -> None:
    """Set the drop-path probability of every ``DropPath`` branch of ``model`` (any final network)."""
    model.drop_path_prob = float(prob)
    for m in model.modules():
        if isinstance(m, DropPath):
            m.drop_prob = float(prob)
            m.drop_prob_t.fill_(float(prob))


class Cell(nn.Module):
    def __init__(self, genotype: Genotype, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        pairs = genotype.reduce if reduction else genotype.normal
        self.concat = list(genotype.reduce_concat if reduction else genotype.normal_concat)
        self.reduction = reduction
        self.multiplier = len(self.concat)
        self.ops = nn.ModuleList()
        self.indices: list[int] = []
        for name, index in pairs:
            stride = 2 if reduction and index < 2 else 1
            op = OPS[name](c, stride, True)
            # Identity branches get no drop path in the reference networks; everything else does.
            self.ops.append(op if isinstance(op, nn.Identity) else DropPath(op))
            self.indices.append(index)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(len(self.ops) // 2):
            a = self.ops[2 * i](states[self.indices[2 * i]])
            b = self.ops[2 * i + 1](states[self.indices[2 * i + 1]])
            states.append(a + b)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier at 2/3 depth (weight 0.4 in the loss); excluded from reported params."""

    def __init__(self, c: int, num_classes: int, imagenet: bool):
        super().__init__()
        self.pool_stride = 2 if imagenet else 3
        self.features = nn.Sequential(
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            # the official ImageNet head has no BatchNorm here (a typo kept for the paper's numbers)
            nn.Identity() if imagenet else nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        if min(x.shape[-2:]) >= 5:  # the reference 5x5 pool; small inputs fall back to 2x2 adaptive
            x = F.avg_pool2d(x, 5, stride=self.pool_stride, count_include_pad=False)
        if min(x.shape[-2:]) < 2:
            x = F.interpolate(x, size=(2, 2), mode="nearest")
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


class Network(nn.Module):
    """CIFAR-style (``stem='cifar'``) or ImageNet mobile-style (``stem='imagenet'``) final network."""

    def __init__(
        self,
        genotype: Genotype,
        *,
        num_classes: int,
        in_channels: int,
        init_channels: int,
        layers: int,
        auxiliary: bool,
        stem: str,
        stem_multiplier: int = 3,
    ):
        super().__init__()
        self.genotype = genotype
        self.drop_path_prob = 0.0
        self.memory_format = torch.contiguous_format
        self.aux_index = reduction_cells(layers)[1] if auxiliary else -1
        c = init_channels
        if stem == "cifar":
            c_curr = stem_multiplier * c
            self.stem0 = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
            self.stem1 = None
            c_pp, c_p, reduction_prev = c_curr, c_curr, False
        elif stem == "imagenet":
            self.stem0 = nn.Sequential(
                nn.Conv2d(in_channels, c // 2, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c // 2),
                nn.ReLU(inplace=True),
                nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c),
            )
            self.stem1 = nn.Sequential(
                nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c)
            )
            c_pp, c_p, reduction_prev = c, c, True
        else:
            check_choice("stem", stem)
        self.cells = nn.ModuleList()
        c_curr = c
        self.auxiliary_head = None
        for i in range(layers):
            reduction = i in reduction_cells(layers)
            if reduction:
                c_curr *= 2
            cell = Cell(genotype, c_pp, c_p, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_curr
            if i == self.aux_index:
                self.auxiliary_head = AuxiliaryHead(c_p, num_classes, imagenet=stem == "imagenet")
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def set_drop_path(self, prob: float) -> None:
        """Set the drop-path probability of every droppable branch (ramped by the trainer)."""
        set_drop_path(self, prob)

    def set_memory_format(self, memory_format: torch.memory_format) -> Network:
        """Lay out weights and inputs as ``memory_format`` (channels_last: 1.2x faster training on CPU, measured).

        The layout changes speed, not the result beyond float rounding; state dicts load either way.
        """
        self.memory_format = memory_format
        return self.to(memory_format=memory_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits; in training mode with an auxiliary head, ``(logits, aux_logits)``."""
        if self.memory_format is not torch.contiguous_format and x.dim() == 4:
            x = x.contiguous(memory_format=self.memory_format)
        s0 = self.stem0(x)
        s1 = s0 if self.stem1 is None else self.stem1(s0)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_index and self.training and self.auxiliary_head is not None:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        if aux is not None:
            return logits, aux
        return logits


def build_network(
    genotype: Genotype | NB201Genotype,
    *,
    num_classes: int,
    in_channels: int = 3,
    init_channels: int = 36,
    layers: int = 20,
    auxiliary: bool = True,
    stem: str = "cifar",
) -> Network | NB201Network:
    """Build the final network for a genotype, validating the arguments first.

    A DARTS genotype gets the DARTS network (``layers`` cells, two of them reductions); a NAS-Bench-201
    genotype gets NAS-Bench-201's network (``layers`` = 3N cells in three stages; its stem is the 3x3 conv).
    """
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    if layers < 3:
        raise ConfigError(f"layers must be >= 3, got {layers}")
    if init_channels < 2 or init_channels % 2:
        raise ConfigError(f"init channels must be an even number >= 2, got {init_channels}")
    if isinstance(genotype, NB201Genotype):
        if stem != "cifar":
            raise ConfigError(f"the {CELL} network has its own 3x3 conv stem: drop --stem {stem} (or use stem cifar)")
        return NB201Network(
            genotype,
            num_classes=num_classes,
            in_channels=in_channels,
            init_channels=init_channels,
            layers=layers,
            auxiliary=auxiliary,
        )
    return Network(
        genotype,
        num_classes=num_classes,
        in_channels=in_channels,
        init_channels=init_channels,
        layers=layers,
        auxiliary=auxiliary,
        stem=stem,
    )


def count_params(model: nn.Module, *, exclude_auxiliary: bool = True) -> int:
    """Trainable parameter count; the auxiliary head is excluded by default, as papers report."""
    return sum(
        p.numel() for n, p in model.named_parameters() if not (exclude_auxiliary and n.startswith("auxiliary_head"))
    )


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass in eval mode, from torch's FlopCounterMode (FLOPs / 2).

    Convention: convolutions and linear layers only (what torch counts); BN,
    ReLU, pooling and additions are not counted.
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2
