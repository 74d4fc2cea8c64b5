"""The geometry of the DARTS cell space, in one place: the edges of each node and which cells reduce.

A cell has ``steps`` intermediate nodes. Node i takes one edge from each of the two cell inputs and one
from each earlier node (i + 2 edges); edges are numbered node by node, so alpha and beta have one row
per edge in that order. Of ``layers`` cells, the two at 1/3 and 2/3 of the depth reduce (DARTS).
"""

from __future__ import annotations

from ..errors import ConfigError

STEPS = 4  # the DARTS cell's intermediate nodes (14 edges); searches and selections use this cell


def num_edges(steps: int) -> int:
    """Edges of a cell with ``steps`` nodes: 2 + 3 + ... + (steps + 1); 14 for the DARTS cell."""
    return sum(i + 2 for i in range(steps))


def node_edges(steps: int) -> list[range]:
    """The edge numbers entering each node; edge ``node_edges(s)[i][j]`` comes from state j."""
    out, start = [], 0
    for i in range(steps):
        out.append(range(start, start + i + 2))
        start += i + 2
    return out


def steps_for(n_edges: int) -> int:
    """The node count whose cell has ``n_edges`` edges (ValueError when no whole number of nodes does)."""
    steps = 0
    while num_edges(steps) < n_edges:
        steps += 1
    if num_edges(steps) != n_edges:
        raise ValueError(f"{n_edges} edges do not make a whole number of nodes (2 + 3 + ... edges)")
    return steps


def reduction_cells(layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells among ``layers`` cells (at 1/3 and 2/3 of the depth)."""
    check_layers(layers)
    return layers // 3, 2 * layers // 3


def check_layers(layers: int) -> None:
    if layers < 3:
        raise ConfigError(f"layers must be >= 3 (two reduction cells and a normal cell), got {layers}")
