"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020): its genotypes and its final network.

Not to be confused with ``--space nb201``, which puts NAS-Bench-201's five ops inside the DARTS cell.
Here the *cell* is NAS-Bench-201's own (``--cell nasbench201``): node 0 is the cell input, nodes 1..3
each sum one edge from every earlier node (6 edges), the cell's output is node 3, and every edge is kept,
so a cell is one op per edge: 5^6 = 15,625 cells with the five ops, ``none`` included (a ``none`` edge is
cut; a node whose edges are all ``none`` outputs zeros). The network: a 3x3 conv stem to C channels, three
stages of N cells at C, 2C and 4C channels with a residual basic block of stride 2 between stages, then
BN-ReLU, global average pooling and the classifier (NAS-Bench-201's ``TinyNetwork``; C=16, N=5 on CIFAR).
Parameter counts equal that network's for every cell (``tests/nas/test_nb201.py`` holds its figures).

The string form is NAS-Bench-201's: ``|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|...|`` lists
node 1's edge, then node 2's two, then node 3's three, each ``op~input``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .candidates import OPS, SPACES, is_parameter_free
from .genotype import GenotypeError, Pair

CELL = "nasbench201"
"""The name of this cell space (``--cell``; a stored genotype's ``cell`` key)."""

NODES = 3  # intermediate nodes; node i (1..3) takes edges from nodes 0..i-1
EDGES: tuple[tuple[int, int], ...] = tuple((node, src) for node in range(1, NODES + 1) for src in range(node))
"""(node, input) of each edge in the order of the string form and of alpha's rows: 1<-0, 2<-0, 2<-1, 3<-0, ..."""

NB201_OPS: tuple[str, ...] = SPACES["nb201"]
"""NAS-Bench-201's five ops, in its order (none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3)."""


def node_edges() -> list[range]:
    """The edge numbers entering each node (nodes 1..3): [0], [1, 2], [3, 4, 5]."""
    out, start = [], 0
    for node in range(1, NODES + 1):
        out.append(range(start, start + node))
        start += node
    return out


@dataclass(frozen=True)
class NB201Genotype:
    """One NAS-Bench-201 cell: the op on each of its six edges, in ``EDGES`` order (data, never code).

    ``normal`` is the same list, so code that counts a genotype's ops cell by cell reads this one like a
    DARTS genotype's normal cell; it has no reduction cell (``reduce`` is empty): its network reduces with
    fixed residual blocks.
    """

    edges: tuple[Pair, ...]
    cell = CELL

    def __post_init__(self) -> None:
        try:
            pairs = tuple((str(op), int(i)) for op, i in self.edges)
        except (TypeError, ValueError):
            raise GenotypeError(f"a {CELL} cell is six (op, input) pairs, got {self.edges!r}"[:200]) from None
        object.__setattr__(self, "edges", pairs)
        if len(pairs) != len(EDGES):
            raise GenotypeError(f"a {CELL} cell has {len(EDGES)} edges (1+2+3), got {len(pairs)}")
        for (op, src), (node, want) in zip(pairs, EDGES):
            if op not in OPS:
                raise GenotypeError(
                    f"{CELL} cell: unknown operation {op!r}; known: {', '.join(sorted(OPS))} "
                    "(your own op: pcdarts.register_op it in this process first)"
                )
            if src != want:
                raise GenotypeError(f"{CELL} cell: node {node}'s edges come from nodes 0..{node - 1}, got {src}")

    # the DARTS genotype's names, so that collapse counts, timelines and reports read both kinds
    @property
    def normal(self) -> tuple[Pair, ...]:
        return self.edges

    @property
    def reduce(self) -> tuple[Pair, ...]:
        return ()

    @property
    def steps(self) -> int:
        return NODES

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(op for op, _ in self.edges)

    def to_text(self) -> str:
        """NAS-Bench-201's string: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        parts = []
        for edges in node_edges():
            parts.append("|" + "|".join(f"{self.edges[e][0]}~{self.edges[e][1]}" for e in edges) + "|")
        return "+".join(parts)

    def __str__(self) -> str:
        return self.to_text()

    def to_dict(self) -> dict[str, Any]:
        return {"cell": CELL, "arch": self.to_text(), "edges": [[op, i] for op, i in self.edges]}

    def to_json(self) -> str:
        import json

        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> NB201Genotype:
        """From the JSON form: ``{"cell": "nasbench201", "arch": "|...|"}`` (or its ``edges`` list)."""
        if not isinstance(data, dict):
            raise GenotypeError(f"a {CELL} genotype is a JSON object with its 'arch' string")
        if data.get("cell", CELL) != CELL:
            raise GenotypeError(f"not a {CELL} genotype: its cell is {data.get('cell')!r}")
        if isinstance(data.get("arch"), str):
            g = parse_nb201(data["arch"])
            if "edges" in data and [list(p) for p in data["edges"]] != [list(p) for p in g.edges]:
                raise GenotypeError(f"{CELL} genotype: its 'arch' string and its 'edges' list disagree")
            return g
        edges = data.get("edges")
        if not isinstance(edges, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in edges):
            raise GenotypeError(f"a {CELL} genotype needs its 'arch' string (|op~0|+|op~0|op~1|+...)")
        return cls(tuple((p[0], p[1]) for p in edges))

    def describe(self) -> str:
        """One line per node: its incoming edges and their ops (a ``none`` edge is cut)."""
        lines = []
        for node, edges in zip(range(1, NODES + 1), node_edges()):
            terms = [f"{self.edges[e][0]}(node {self.edges[e][1]})" for e in edges]
            lines.append(f"node {node} = " + " + ".join(terms))
        return f"{CELL} cell {self.to_text()}\n" + "\n".join(lines) + f"; output = node {NODES}"

    def counts(self) -> dict[str, int]:
        """How many edges hold a parameter-free op (skip, pools) and how many ``none``."""
        return {
            "param_free": sum(is_parameter_free(op) for op in self.ops),
            "none": sum(OPS[op].zero for op in self.ops),
        }

    def reaches_output(self) -> bool:
        """Whether some path of non-``none`` edges joins the cell input to its output (else it outputs zeros)."""
        live = {0}
        for (op, src), (node, _) in zip(self.edges, EDGES):
            if src in live and not OPS[op].zero:
                live.add(node)
        return NODES in live


MAX_ARCH_TEXT = 1000


def parse_nb201(text: str) -> NB201Genotype:
    """NAS-Bench-201's string form to a genotype; anything else is a one-line ``GenotypeError``."""
    if not isinstance(text, str) or len(text) > MAX_ARCH_TEXT:
        raise GenotypeError(f"a {CELL} cell string is short text like |nor_conv_3x3~0|+|...|")
    nodes = text.strip().split("+")
    if len(nodes) != NODES:
        raise GenotypeError(f"a {CELL} cell string has {NODES} nodes joined by '+', got {len(nodes)}: {text[:80]!r}")
    edges: list[Pair] = []
    for node, part in enumerate(nodes, start=1):
        if not (part.startswith("|") and part.endswith("|")) or len(part) < 2:
            raise GenotypeError(f"node {node} of {text[:80]!r} must look like |op~0|op~1|")
        items = part[1:-1].split("|")
        if len(items) != node:
            raise GenotypeError(f"node {node} of a {CELL} cell takes {node} edge(s), got {len(items)} in {part!r}")
        for item in items:
            op, sep, src = item.rpartition("~")
            if not sep or not src.isdigit():
                raise GenotypeError(f"each edge is op~input, got {item!r} in {text[:80]!r}")
            edges.append((op, int(src)))
    return NB201Genotype(tuple(edges))


def random_nb201(seed: int, ops: Sequence[str] = NB201_OPS) -> NB201Genotype:
    """A cell drawn uniformly from all ``len(ops) ** 6`` cells (``none`` included: NAS-Bench-201's space)."""
    rng = random.Random(seed)
    ops = list(ops)
    if not ops:
        raise GenotypeError("the op space is empty")
    return NB201Genotype(tuple((rng.choice(ops), src) for _, src in EDGES))


def whole_stages(layers: int) -> int:
    """``layers`` rounded up to whole stages (a multiple of 3): the depth a run of this cell uses when the
    depth it was given is a DARTS-cell default."""
    return layers + (-layers) % 3


def check_layers(layers: int) -> int:
    """N, the cells per stage, from ``layers`` (the cells in all three stages: 3N; NAS-Bench-201: 15)."""
    if layers < 3 or layers % 3:
        raise ConfigError(
            f"the {CELL} network has three stages of N cells, so layers must be a multiple of 3 "
            f"(NAS-Bench-201: 15, N=5), got {layers}"
        )
    return layers // 3


# ---------------------------------------------------------------- the final network
class ResidualReduction(nn.Module):
    """The residual basic block between stages: ReLU-conv3x3(stride 2)-BN, ReLU-conv3x3-BN, plus a shortcut of
    2x2 average pooling and a 1x1 conv (NAS-Bench-201's ``ResNetBasicblock`` at stride 2)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        from .ops import ReLUConvBN

        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1, affine)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, affine)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2, ceil_mode=True), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Cell(nn.Module):
    """A NAS-Bench-201 cell: every edge's op at C channels, stride 1; ``none`` edges are skipped (zeros)."""

    def __init__(self, genotype: NB201Genotype, c: int):
        super().__init__()
        from .network import DropPath

        self.ops = nn.ModuleList()
        self.live: list[bool] = []
        for op_name, _ in genotype.edges:
            op = OPS[op_name](c, 1, True)
            self.live.append(not OPS[op_name].zero)
            self.ops.append(op if isinstance(op, nn.Identity) or not self.live[-1] else DropPath(op))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        for edges in node_edges():
            terms = [self.ops[e](states[EDGES[e][1]]) for e in edges if self.live[e]]
            if not terms:
                states.append(torch.zeros_like(x))
                continue
            total = terms[0]
            for t in terms[1:]:
                total = total + t
            states.append(total)
        return states[-1]


class NB201Network(nn.Module):
    """NAS-Bench-201's network for one cell (``TinyNetwork``): stem, 3 stages of N cells, BN-ReLU, classifier.

    ``auxiliary`` adds the DARTS auxiliary head after the second residual block and drop path works on the
    cells' ops as in the DARTS network (NAS-Bench-201 itself trains with neither).
    """

    def __init__(
        self,
        genotype: NB201Genotype,
        *,
        num_classes: int,
        in_channels: int,
        init_channels: int,
        layers: int,
        auxiliary: bool = False,
    ):
        super().__init__()
        from .network import AuxiliaryHead

        n = check_layers(layers)
        self.genotype = genotype
        self.drop_path_prob = 0.0
        self.memory_format = torch.contiguous_format
        c = init_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.cells = nn.ModuleList()
        self.auxiliary_head = None
        self.aux_index = -1
        c_prev = c
        for stage in range(3):
            c_stage = c * 2**stage
            if stage:
                self.cells.append(ResidualReduction(c_prev, c_stage))
                if stage == 2 and auxiliary:
                    self.aux_index = len(self.cells) - 1
                    self.auxiliary_head = AuxiliaryHead(c_stage, num_classes, imagenet=False)
            for _ in range(n):
                self.cells.append(NB201Cell(genotype, c_stage))
            c_prev = c_stage
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def set_drop_path(self, prob: float) -> None:
        from .network import set_drop_path

        set_drop_path(self, prob)

    def set_memory_format(self, memory_format: torch.memory_format) -> NB201Network:
        self.memory_format = memory_format
        return self.to(memory_format=memory_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits; in training mode with an auxiliary head, ``(logits, aux_logits)``."""
        if self.memory_format is not torch.contiguous_format and x.dim() == 4:
            x = x.contiguous(memory_format=self.memory_format)
        s = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s = cell(s)
            if i == self.aux_index and self.training and self.auxiliary_head is not None:
                aux = self.auxiliary_head(s)
        logits = self.classifier(self.global_pooling(self.lastact(s)).flatten(1))
        return (logits, aux) if aux is not None else logits
