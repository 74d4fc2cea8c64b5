"""The table of candidate operations, and the named op spaces a search can choose from.

Each op is declared once, here: its name, the builder ``(C, stride, affine) -> nn.Module``, whether it is
parameter-free (the ops that take over when DARTS collapses), whether it is the ``none`` op (zeros: the
mixed op skips it, though its alpha keeps a share of the softmax), whether the supernet follows it with an
affine-free BN (DARTS does for pooling), and how the supernet's fast path (``pcdarts.nas.fanout``) computes it.
The mixed op, the fan-out, derivation, random cells, the parameter-free counts, the plots and the
benchmark's baseline all read this table. An op the fast path does not know runs edge by edge inside the
fanned cell: nothing is dropped.

Add your own with ``register_op`` and search it with ``SearchConfig(ops=[...])`` (``--ops`` on the CLI).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import ConfigError
from .ops import AvgPool3x3, Conv7x1x1x7, DilConv, FactorizedReduce, MaxPool3x3, ReLUConvBN, SepConv, Zero

OpFactory = Callable[[int, int, bool], nn.Module]

FAN_OUT_KINDS = ("sep_conv", "dil_conv", "skip", "pool", "nor_conv")
"""How the fast path may compute an op for all edges of a state at once: ``sep_conv`` (a ``SepConv``) and
``dil_conv`` (a ``DilConv``) stack the edges' kernels, ``nor_conv`` (a ``ReLUConvBN``) stacks the edges' conv
weights along the output channels (one dense conv), ``skip`` (identity, or ``FactorizedReduce`` when striding)
and ``pool`` (a parameter-free pool the supernet follows with its BN) are computed once."""


@dataclass(frozen=True)
class OpSpec:
    """One candidate operation. Calling it builds the module: ``OPS[name](C, stride, affine)``."""

    name: str
    build: OpFactory
    parameter_free: bool = False
    zero: bool = False
    search_bn: bool = False
    fan_out: str | None = None

    def __call__(self, c: int, stride: int, affine: bool) -> nn.Module:
        return self.build(c, stride, affine)


_TABLE: dict[str, OpSpec] = {}

OPS: Mapping[str, OpSpec] = _TABLE
"""Every registered op by name (read-only view; add with ``register_op``)."""

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


def register_op(
    name: str,
    build: OpFactory | None = None,
    *,
    parameter_free: bool = False,
    search_bn: bool = False,
    fan_out: str | None = None,
    zero: bool = False,
) -> Any:
    """Declare a candidate op. ``register_op(name, build)`` or ``@register_op(name)`` over the builder.

    ``build(C, stride, affine)`` returns a module mapping ``(N, C, H, W)`` to ``(N, C, ceil(H/stride),
    ceil(W/stride))``; ``affine`` is False in the supernet (DARTS) and True in the final network.
    ``parameter_free`` counts the op as a collapse op (caps, early stop, reports); ``search_bn`` puts an
    affine-free BN after it in the supernet, as DARTS does for pooling. ``fan_out`` (one of
    ``FAN_OUT_KINDS``) is for ops built from pcdarts's own modules; without it the op runs edge by edge.
    Returns ``build``. A name can be registered once.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"op name must be a letter then letters, digits, _ . or -, got {name!r}")
    if fan_out is not None and fan_out not in FAN_OUT_KINDS:
        raise ValueError(f"fan_out must be None or one of {', '.join(FAN_OUT_KINDS)}, got {fan_out!r}")
    if fan_out == "pool" and not search_bn:
        raise ValueError("fan_out='pool' needs search_bn=True: the fast path computes a pool together with its BN")

    def wrap(fn: OpFactory) -> OpFactory:
        if not callable(fn):
            raise TypeError(f"op {name!r}: the builder must be callable (C, stride, affine) -> nn.Module")
        if name in _TABLE:
            raise ValueError(f"operation {name!r} is already registered")
        _TABLE[name] = OpSpec(name, fn, bool(parameter_free), bool(zero), bool(search_bn), fan_out)
        return fn

    return wrap if build is None else wrap(build)


register_op("none", lambda c, stride, affine: Zero(stride), zero=True)
register_op("max_pool_3x3", lambda c, stride, affine: MaxPool3x3(stride), parameter_free=True, search_bn=True,
            fan_out="pool")  # fmt: skip
register_op("avg_pool_3x3", lambda c, stride, affine: AvgPool3x3(stride), parameter_free=True, search_bn=True,
            fan_out="pool")  # fmt: skip
register_op("skip_connect", lambda c, stride, affine: nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine),
            parameter_free=True, fan_out="skip")  # fmt: skip
register_op("sep_conv_3x3", lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine), fan_out="sep_conv")
register_op("sep_conv_5x5", lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine), fan_out="sep_conv")
register_op("sep_conv_7x7", lambda c, stride, affine: SepConv(c, c, 7, stride, 3, affine), fan_out="sep_conv")
register_op("dil_conv_3x3", lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine), fan_out="dil_conv")
register_op("dil_conv_5x5", lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine), fan_out="dil_conv")
register_op("conv_7x1_1x7", lambda c, stride, affine: Conv7x1x1x7(c, stride, affine))
register_op("nor_conv_1x1", lambda c, stride, affine: ReLUConvBN(c, c, 1, stride, 0, affine), fan_out="nor_conv")
register_op("nor_conv_3x3", lambda c, stride, affine: ReLUConvBN(c, c, 3, stride, 1, affine), fan_out="nor_conv")

SPACES: dict[str, tuple[str, ...]] = {
    # DARTS (Liu et al. 2019) and PC-DARTS: the paper's order is the alpha column order
    "darts": (
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    ),
    # the five ops of NAS-Bench-201 (Dong & Yang 2020) in the DARTS cell: smaller, plain ReLU-conv-BN convs
    "nb201": ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"),
}
"""The named op spaces a search can choose (``--space``); the column order of alpha."""

PRIMITIVES: tuple[str, ...] = SPACES["darts"]
"""The DARTS space's eight ops, in the paper's order (index = alpha column): the default."""

CUSTOM = "custom"


@dataclass(frozen=True)
class OpSpace:
    """The ops a search chooses from, in alpha-column order, and the name it is known by."""

    name: str
    ops: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.name, "ops": list(self.ops)}


DARTS = OpSpace("darts", PRIMITIVES)


def op_space(space: str = "darts", ops: Iterable[str] | None = None) -> OpSpace:
    """The op space of a search: a named one (``SPACES``), or the ops listed, in that order.

    ``ops`` is taken as written: ``none`` is searched only when listed. A list equal to a named space
    takes its name; any other list is called ``custom``. Unknown ops, repeats and a list without a
    non-``none`` op are ``ConfigError``s.
    """
    if ops is None or (isinstance(ops, (list, tuple)) and not ops):
        if space not in SPACES:
            hint = (
                " (NAS-Bench-201's cell is --cell nasbench201; its ops are --space nb201)"
                if "201" in str(space)
                else ""
            )
            raise ConfigError(f"unknown op space {space!r}: choose one of {', '.join(SPACES)}, or list --ops{hint}")
        return OpSpace(space, SPACES[space])
    if space not in SPACES and space != CUSTOM:
        raise ConfigError(f"unknown op space {space!r}: choose one of {', '.join(SPACES)}, or list --ops")
    if isinstance(ops, str):
        ops = [o.strip() for o in ops.split(",") if o.strip()]
    names = tuple(str(o) for o in ops)
    unknown = [o for o in names if o not in OPS]
    if unknown:
        raise ConfigError(
            f"unknown op {unknown[0]!r} in --ops; registered: {', '.join(sorted(OPS))} "
            "(your own: pcdarts.register_op(name, builder) before the search)"
        )
    repeated = sorted({o for o in names if names.count(o) > 1})
    if repeated:
        raise ConfigError(f"op {repeated[0]!r} is listed twice in --ops: list each op once")
    if all(OPS[o].zero for o in names):
        raise ConfigError("--ops lists no op besides 'none': add at least one operation to search")
    if space not in ("darts", CUSTOM) and names != SPACES[space]:  # darts: the default, so not a choice
        raise ConfigError(f"--space {space} and --ops both given and they differ: give one of them")
    for known, listed in SPACES.items():
        if listed == names:
            return OpSpace(known, names)
    return OpSpace(CUSTOM, names)


def stored_ops(state: Mapping[str, Any]) -> Any:
    """The op names stored with a run's arch state, checkpoint, config or history line, as stored; the DARTS
    ops where none are (runs written before spaces were stored searched them)."""
    ops = state.get("ops")
    return DARTS.ops if ops is None else ops


def space_of(state: Mapping[str, Any]) -> OpSpace:
    """The op space stored with a run's arch state, checkpoint or config (``stored_ops``), checked: a damaged
    list or an op not registered in this process is a ``ConfigError``."""
    ops = stored_ops(state)
    if ops is DARTS.ops:
        return DARTS
    if not isinstance(ops, (list, tuple)) or not all(isinstance(o, str) for o in ops):
        raise ConfigError(f"the stored op list {ops!r} is not a list of op names: the run's files are damaged")
    missing = [o for o in ops if o not in OPS]
    if missing:
        raise ConfigError(
            f"this run searched op {missing[0]!r}, which is not registered here: "
            "call pcdarts.register_op for it (as for the search) first"
        )
    name = state.get("space")
    return OpSpace(name if isinstance(name, str) else CUSTOM, tuple(ops))


def is_parameter_free(name: str) -> bool:
    """Pooling and identity ops (declared so in the table): the ones that take over when DARTS collapses."""
    spec = OPS.get(name)
    return spec is not None and spec.parameter_free
