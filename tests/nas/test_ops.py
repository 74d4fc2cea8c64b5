import pytest
import torch
import torch.nn.functional as F

from pcdarts.nas.candidates import OPS, PRIMITIVES, register_op
from pcdarts.nas.ops import FactorizedReduce


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 7])
def test_every_op_keeps_channels_and_divides_resolution(name, stride, size):
    op = OPS[name](4, stride, True)
    y = op(torch.randn(2, 4, size, size))
    expect = -(-size // stride)
    assert y.shape == (2, 4, expect, expect)


def test_primitives_are_the_paper_order():
    assert PRIMITIVES == (
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    )


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_op("sep_conv_3x3")(lambda c, s, a: None)


def test_factorized_reduce_matches_reference_slice_on_even_sizes():
    fr = FactorizedReduce(4, 6).eval()
    x = torch.randn(2, 4, 8, 8)
    ref = fr.bn(torch.cat([fr.conv_1(F.relu(x)), fr.conv_2(F.relu(x)[:, :, 1:, 1:])], dim=1))
    torch.testing.assert_close(fr(x), ref)


def test_none_op_is_zero():
    assert OPS["none"](3, 2, False)(torch.randn(1, 3, 6, 6)).abs().sum() == 0


@pytest.mark.parametrize(
    "name",
    ["max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "skip_connect"],
)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 7, 1])
def test_fast_cpu_kernels_match_the_plain_path(name, stride, size):
    """The fast kernels change the arithmetic order only: outputs and gradients agree to float rounding."""
    import copy

    from pcdarts.bench.reference import to_reference

    op = OPS[name](4, stride, False)
    plain = to_reference(copy.deepcopy(op))
    x = torch.randn(3, 4, size, size, requires_grad=True)
    outs, grads = [], []
    for model in (plain, op):
        params = list(model.parameters())
        y = model(x)
        g = torch.autograd.grad((y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum(), [x, *params])
        outs.append(y)
        grads.append(g)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-6)
    for fast_g, plain_g in zip(grads[1], grads[0]):  # input and every weight
        torch.testing.assert_close(fast_g, plain_g, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("kernel", "dilation"), [(5, 1), (3, 2), (5, 2), (7, 1)])
@pytest.mark.parametrize("size", [32, 9, 2])
def test_depthwise_backward_matches_pytorch(kernel, dilation, size):
    """The forward-kernel backward of the depthwise conv gives PyTorch's gradients on odd, even and tiny maps."""
    from pcdarts.nas.ops import DepthwiseConv2d

    conv = DepthwiseConv2d(6, kernel, 1, dilation * (kernel - 1) // 2, dilation)
    plain = torch.nn.Conv2d(6, 6, kernel, 1, dilation * (kernel - 1) // 2, dilation, groups=6, bias=False)
    plain.weight = conv.weight
    x = torch.randn(5, 6, size, size, requires_grad=True)
    got, want = [], []
    for model, out in ((conv, got), (plain, want)):
        y = model(x)
        out.extend([y, *torch.autograd.grad((y * y.detach().sin()).sum(), [x, model.weight])])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_depthwise_fast_path_steps_aside_under_autocast():
    """bf16 autocast: the fast backward would mix bf16 gradients with fp32 weights, so PyTorch's path runs."""
    from pcdarts.nas.ops import DepthwiseConv2d

    conv = DepthwiseConv2d(4, 5, 1, 2)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    y.float().sum().backward()
    assert y.dtype == torch.bfloat16 and conv.weight.grad.dtype == torch.float32 and x.grad is not None
