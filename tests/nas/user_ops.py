"""A user's ops, registered once for the tests that search or fan out over them: one that offers nothing to
the fast path (its own forward) and one that reuses a shipped op's fast path under another name."""

from torch import nn

from pcdarts.nas.candidates import OPS, SPACES, register_op


def plain_op(c: int, stride: int, affine: bool) -> nn.Module:
    """A user's op that offers nothing to the fast path: its own forward, with an affine BN inside."""
    return nn.Sequential(nn.Conv2d(c, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c, affine=True), nn.GELU())


register_op("test_plain_conv", plain_op)
register_op("test_fused_conv", lambda c, stride, affine: OPS["nor_conv_3x3"](c, stride, affine))
CUSTOM = ("none", "skip_connect", "test_plain_conv", "sep_conv_3x3", "test_fused_conv", "max_pool_3x3")

SPACE_CASES = [*SPACES.values(), CUSTOM]
