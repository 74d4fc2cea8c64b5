"""Genotypes: the discrete architecture a search produces (data, never code).

A genotype lists two ``(op, input)`` pairs per intermediate node for the
normal and the reduction cell; inputs 0 and 1 are the two cell inputs and
``k >= 2`` is intermediate node ``k - 2``.  Genotypes travel as JSON; the
reference code's ``Genotype(normal=[...], ...)`` text is parsed with ``ast``
into literals only, so a malicious string cannot execute anything.
"""

from __future__ import annotations

import ast
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import PCDartsError
from .candidates import OPS, PRIMITIVES, is_parameter_free

Pair = tuple[str, int]


class GenotypeError(PCDartsError, ValueError):
    """A genotype that cannot be used: unknown op, bad input index, bad text."""


@dataclass(frozen=True)
class Genotype:
    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Pair, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        for kind in ("normal", "reduce"):
            pairs = tuple((str(op), int(i)) for op, i in getattr(self, kind))
            concat = tuple(int(c) for c in getattr(self, kind + "_concat"))
            object.__setattr__(self, kind, pairs)
            object.__setattr__(self, kind + "_concat", concat)
            _check_cell(kind, pairs, concat)

    @property
    def steps(self) -> int:
        """Number of intermediate nodes of the normal cell."""
        return len(self.normal) // 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "normal": [[op, i] for op, i in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[op, i] for op, i in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Any:
        """Build from the JSON form; extra keys are ignored, missing ones are an error.

        A genotype stored with ``"cell": "nasbench201"`` is a NAS-Bench-201 cell (``pcdarts.nas.nb201``) and
        comes back as an ``NB201Genotype``; without a ``cell`` key it is a DARTS cell, as every genotype
        stored before that cell space existed.
        """
        if not isinstance(data, dict):
            raise GenotypeError("genotype JSON must be an object with normal/reduce lists")
        if "genotype" in data and "normal" not in data and "cell" not in data:  # a result file that embeds one
            return cls.from_dict(data["genotype"])
        cell = data.get("cell", "darts")
        if cell != "darts":
            from .nb201 import CELL, NB201Genotype

            if cell != CELL:
                raise GenotypeError(f"unknown cell space {str(cell)[:40]!r} in genotype JSON: darts or {CELL}")
            return NB201Genotype.from_dict(data)
        try:
            normal = [_pair(p) for p in data["normal"]]
            reduce = [_pair(p) for p in data["reduce"]]
            n_nodes = len(normal) // 2
            default = list(range(2, 2 + n_nodes))
            normal_concat = _concat(data.get("normal_concat", default))
            reduce_concat = _concat(data.get("reduce_concat", list(range(2, 2 + len(reduce) // 2))))
        except KeyError as exc:
            raise GenotypeError(f"genotype JSON lacks the key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise GenotypeError(f"malformed genotype JSON: {exc}") from None
        return cls(tuple(normal), tuple(normal_concat), tuple(reduce), tuple(reduce_concat))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_text(self) -> str:
        """The reference code's text form, for pasting into papers and old tools."""
        return (
            f"Genotype(normal={list(self.normal)!r}, normal_concat={list(self.normal_concat)!r}, "
            f"reduce={list(self.reduce)!r}, reduce_concat={list(self.reduce_concat)!r})"
        )

    def __str__(self) -> str:
        return self.to_text()

    def describe(self) -> str:
        """A readable multi-line form: one line per cell, each node with its two inputs (c_k-2, c_k-1 = cell inputs)."""
        name = state_name

        lines = []
        for cell, pairs, concat in (
            ("normal", self.normal, self.normal_concat),
            ("reduce", self.reduce, self.reduce_concat),
        ):
            nodes = [
                f"{k // 2}: {pairs[k][0]}({name(pairs[k][1])}) + {pairs[k + 1][0]}({name(pairs[k + 1][1])})"
                for k in range(0, len(pairs), 2)
            ]
            lines.append(f"{cell:6s} " + "; ".join(nodes) + f"; output = concat of {[name(c) for c in concat]}")
        return "\n".join(lines)


def state_name(i: int) -> str:
    """The name of a cell state everywhere (text, plots): the two cell inputs, then the nodes."""
    return ("c_{k-2}", "c_{k-1}")[i] if i < 2 else f"node {i - 2}"


def edge_name(src: int, node: int) -> str:
    """The name of the edge from state ``src`` into intermediate node ``node``, everywhere: 'c_{k-1} -> node 0'."""
    return f"{state_name(src)} -> node {node}"


def _concat(c: Any) -> list[int]:
    if not isinstance(c, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in c):
        raise GenotypeError(f"a concat must be a list of node numbers, got {c!r}"[:200])
    return list(c)


def _pair(p: Any) -> Pair:
    if not isinstance(p, (list, tuple)) or len(p) != 2:
        raise GenotypeError(f"each edge must be an [op, input] pair, got {p!r}")
    op, idx = p
    if not isinstance(op, str) or isinstance(idx, bool) or not isinstance(idx, int):
        raise GenotypeError(f"each edge must be [str, int], got {p!r}")
    return op, idx


MAX_NODES = 32  # far beyond any published cell (DARTS: 4, NASNet/AmoebaNet: 5)


MAX_TEXT = 100_000  # characters of genotype text accepted


MAX_NESTING = 32  # brackets deep, dots or pluses: a genotype needs 3 brackets and no dot or plus


def _check_cell(kind: str, pairs: tuple[Pair, ...], concat: tuple[int, ...]) -> None:
    if not pairs or len(pairs) % 2:
        raise GenotypeError(f"{kind}: needs two (op, input) pairs per node, got {len(pairs)} pairs")
    if len(pairs) > 2 * MAX_NODES:
        raise GenotypeError(f"{kind}: {len(pairs) // 2} nodes is more than the {MAX_NODES} supported")
    n_nodes = len(pairs) // 2
    for k, (op, idx) in enumerate(pairs):
        if op not in OPS:
            raise GenotypeError(
                f"{kind}: unknown operation {op!r}; known: {', '.join(sorted(OPS))} "
                "(your own op: pcdarts.register_op it in this process first)"
            )
        if OPS[op].zero:
            raise GenotypeError(f"{kind}: {op!r} (zeros) cannot appear in a derived genotype")
        node = k // 2
        if not 0 <= idx < node + 2:
            raise GenotypeError(f"{kind}: node {node} takes input {idx}, but only 0..{node + 1} exist")
    if not concat:
        raise GenotypeError(f"{kind}_concat is empty")
    for c in concat:
        if not 0 <= c < n_nodes + 2:
            raise GenotypeError(f"{kind}_concat holds {c}, outside 0..{n_nodes + 1}")
    if len(set(concat)) != len(concat):
        raise GenotypeError(f"{kind}_concat repeats a node: {list(concat)}")
    if max(concat) < 2:
        raise GenotypeError(f"{kind}_concat must include an intermediate node (2..{n_nodes + 1}), got {list(concat)}")


# ---------------------------------------------------------------- text form
def _literal(node: ast.AST) -> Any:
    """Evaluate the few literal shapes a genotype uses; anything else is refused."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        args = [_literal(a) for a in node.args]
        if node.func.id == "range" and all(isinstance(a, int) for a in args) and 1 <= len(args) <= 3:
            if 0 in args[2:]:
                raise GenotypeError("range() step must not be zero")
            r = range(*args)
            if len(r) > MAX_NODES + 2:  # measured before it is materialised
                raise GenotypeError(f"range{tuple(args)} holds {len(r)} nodes, more than a cell can have")
            return list(r)
        if node.func.id in ("list", "tuple") and len(args) == 1:
            if not isinstance(args[0], list):
                raise GenotypeError(
                    f"{node.func.id}() of a genotype takes a list or tuple, got {type(args[0]).__name__}"
                )
            return list(args[0])
    raise GenotypeError(f"genotype text may hold only literals and range(); found {ast.dump(node)[:60]}")


def parse_genotype_text(text: str) -> Genotype:
    """Parse ``Genotype(normal=[...], normal_concat=range(2, 6), ...)`` without eval."""
    if len(text) > MAX_TEXT:
        raise GenotypeError(f"genotype text is {len(text):,} characters long; a genotype needs far fewer")
    depth = deepest = 0
    for ch in text:  # a genotype nests three deep; hostile nesting never reaches the parser
        depth += (ch in "([{") - (ch in ")]}")
        deepest = max(deepest, depth)
    if deepest > MAX_NESTING or text.count(".") > MAX_NESTING or text.count("+") > MAX_NESTING:
        raise GenotypeError("genotype text nests or chains too deeply to be a genotype")
    try:
        return _parse_genotype_tree(text)
    except (RecursionError, OverflowError, MemoryError) as exc:
        raise GenotypeError(f"genotype text is too deep or too large to be a genotype ({type(exc).__name__})") from None


def _parse_genotype_tree(text: str) -> Genotype:
    try:
        tree = ast.parse(text.strip(), mode="exec")
    except SyntaxError as exc:
        raise GenotypeError(f"genotype text does not parse: {exc.msg}") from None
    if len(tree.body) != 1:
        raise GenotypeError("genotype text must be a single Genotype(...) expression")
    stmt = tree.body[0]
    expr = stmt.value if isinstance(stmt, (ast.Expr, ast.Assign)) else None
    if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "Genotype"):
        raise GenotypeError("genotype text must look like Genotype(normal=[...], reduce=[...], ...)")
    names = ["normal", "normal_concat", "reduce", "reduce_concat"]
    if len(expr.args) > 4:
        raise GenotypeError("Genotype(...) takes at most four arguments")
    fields = {names[i]: _literal(a) for i, a in enumerate(expr.args)}
    for kw in expr.keywords:
        if kw.arg not in names:
            raise GenotypeError(f"unknown Genotype field {kw.arg!r}")
        if kw.arg in fields:
            raise GenotypeError(f"Genotype field {kw.arg!r} is given twice")
        fields[kw.arg] = _literal(kw.value)
    return Genotype.from_dict(fields)


# ---------------------------------------------------------------- registry
GENOTYPES: dict[str, Genotype] = {}


def register_genotype(name: str, genotype: Genotype) -> None:
    if name in GENOTYPES:
        raise ValueError(f"genotype {name!r} is already registered")
    GENOTYPES[name] = genotype


def _g(
    normal: str, reduce: str, normal_concat: list[int] | None = None, reduce_concat: list[int] | None = None
) -> Genotype:
    def pairs(s: str) -> tuple[Pair, ...]:
        out = []
        for tok in s.split():
            op, idx = tok.rsplit(",", 1)
            out.append((op, int(idx)))
        return tuple(out)

    n, r = pairs(normal), pairs(reduce)
    return Genotype(
        n, tuple(normal_concat or range(2, 2 + len(n) // 2)), r, tuple(reduce_concat or range(2, 2 + len(r) // 2))
    )


register_genotype(
    "PC_DARTS_cifar",
    _g(
        "sep_conv_3x3,1 skip_connect,0 sep_conv_3x3,0 dil_conv_3x3,1 sep_conv_5x5,0 sep_conv_3x3,1 avg_pool_3x3,0 dil_conv_3x3,1",
        "sep_conv_5x5,1 max_pool_3x3,0 sep_conv_5x5,1 sep_conv_5x5,2 sep_conv_3x3,0 sep_conv_3x3,3 sep_conv_3x3,1 sep_conv_3x3,2",
    ),
)


register_genotype(
    "PC_DARTS_image",
    _g(
        "skip_connect,1 sep_conv_3x3,0 sep_conv_3x3,0 skip_connect,1 sep_conv_3x3,1 sep_conv_3x3,3 sep_conv_3x3,1 dil_conv_5x5,4",
        "sep_conv_3x3,0 skip_connect,1 dil_conv_5x5,2 max_pool_3x3,1 sep_conv_3x3,2 sep_conv_3x3,1 sep_conv_5x5,0 sep_conv_3x3,3",
    ),
)


register_genotype(
    "DARTS_V1",
    _g(
        "sep_conv_3x3,1 sep_conv_3x3,0 skip_connect,0 sep_conv_3x3,1 skip_connect,0 sep_conv_3x3,1 sep_conv_3x3,0 skip_connect,2",
        "max_pool_3x3,0 max_pool_3x3,1 skip_connect,2 max_pool_3x3,0 max_pool_3x3,0 skip_connect,2 skip_connect,2 avg_pool_3x3,0",
    ),
)


register_genotype(
    "DARTS_V2",
    _g(
        "sep_conv_3x3,0 sep_conv_3x3,1 sep_conv_3x3,0 sep_conv_3x3,1 sep_conv_3x3,1 skip_connect,0 skip_connect,0 dil_conv_3x3,2",
        "max_pool_3x3,0 max_pool_3x3,1 skip_connect,2 max_pool_3x3,1 max_pool_3x3,0 skip_connect,2 skip_connect,2 max_pool_3x3,1",
    ),
)


register_genotype(
    "NASNet",
    _g(
        "sep_conv_5x5,1 sep_conv_3x3,0 sep_conv_5x5,0 sep_conv_3x3,0 avg_pool_3x3,1 skip_connect,0 avg_pool_3x3,0 avg_pool_3x3,0 sep_conv_3x3,1 skip_connect,1",
        "sep_conv_5x5,1 sep_conv_7x7,0 max_pool_3x3,1 sep_conv_7x7,0 avg_pool_3x3,1 sep_conv_5x5,0 skip_connect,3 avg_pool_3x3,2 sep_conv_3x3,2 max_pool_3x3,1",
        [2, 3, 4, 5, 6],
        [4, 5, 6],
    ),
)


register_genotype(
    "AmoebaNet",
    _g(
        "avg_pool_3x3,0 max_pool_3x3,1 sep_conv_3x3,0 sep_conv_5x5,2 sep_conv_3x3,0 avg_pool_3x3,3 sep_conv_3x3,1 skip_connect,1 skip_connect,0 avg_pool_3x3,1",
        "avg_pool_3x3,0 sep_conv_3x3,1 max_pool_3x3,0 sep_conv_7x7,2 sep_conv_7x7,0 avg_pool_3x3,1 max_pool_3x3,0 max_pool_3x3,1 conv_7x1_1x7,0 sep_conv_3x3,5",
        [4, 5, 6],
        [3, 4, 6],
    ),
)


def random_genotype(seed: int, steps: int = 4, ops: Sequence[str] = PRIMITIVES) -> Genotype:
    """A uniformly sampled genotype of an op space: two distinct inputs per node, non-``none`` ops.

    The random-search baseline (Li & Talwalkar 2019): the same shape as a derived cell. ``ops`` is the
    space the searches it is compared with chose from (the DARTS ops by default); a given seed gives the
    same cell as before spaces could be chosen.
    """
    rng = random.Random(seed)
    ops = [p for p in ops if not OPS[p].zero]
    if not ops:
        raise GenotypeError("the op space has no op besides 'none' to sample")

    def cell() -> tuple[Pair, ...]:
        pairs = []
        for i in range(steps):
            for j in rng.sample(range(i + 2), 2):
                pairs.append((rng.choice(ops), j))
        return tuple(pairs)

    concat = tuple(range(2, 2 + steps))
    return Genotype(cell(), concat, cell(), concat)


def none_count(pairs: tuple[Pair, ...]) -> int:
    """``none`` edges in one cell (only a NAS-Bench-201 cell keeps them: each one cuts an edge)."""
    return sum(op in OPS and OPS[op].zero for op, _ in pairs)


def param_free_count(pairs: tuple[Pair, ...]) -> int:
    """Parameter-free ops (pools, skip) in one cell: a rising count warns of collapse."""
    return sum(is_parameter_free(op) for op, _ in pairs)
