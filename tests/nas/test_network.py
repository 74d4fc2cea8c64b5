import pytest
import torch

from pcdarts import GENOTYPES
from pcdarts.nas.network import AuxiliaryHead, DropPath, build_network, count_macs, count_params, drop_path


def test_pc_darts_cifar_params_match_the_paper_network():
    m = build_network(GENOTYPES["PC_DARTS_cifar"], num_classes=10, init_channels=36, layers=20)
    assert abs(count_params(m) - 3_634_678) <= 0.005 * 3_634_678


def test_darts_v2_params():
    m = build_network(GENOTYPES["DARTS_V2"], num_classes=10, init_channels=36, layers=20)
    assert abs(count_params(m) - 3_349_342) <= 0.005 * 3_349_342


@pytest.mark.slow
def test_pc_darts_image_params_and_macs():
    m = build_network(
        GENOTYPES["PC_DARTS_image"], num_classes=1000, init_channels=48, layers=14, stem="imagenet", auxiliary=False
    )
    assert abs(count_params(m) - 5_342_464) <= 0.005 * 5_342_464
    assert abs(count_macs(m, (3, 224, 224)) - 597e6) <= 0.03 * 597e6


@pytest.mark.parametrize("name", sorted(GENOTYPES))
def test_every_builtin_builds_and_runs(name):
    m = build_network(GENOTYPES[name], num_classes=7, in_channels=1, init_channels=8, layers=5)
    m.train()
    logits, aux = m(torch.randn(2, 1, 16, 16))
    assert logits.shape == aux.shape == (2, 7)
    m.eval()
    assert m(torch.randn(2, 1, 16, 16)).shape == (2, 7)


def test_drop_path_is_pure_and_unbiased():
    x = torch.ones(10000, 1)
    y = drop_path(x, 0.3, training=True)
    assert torch.equal(x, torch.ones(10000, 1))  # not in place
    assert abs(y.mean().item() - 1.0) < 0.05
    vals = y.unique().tolist()
    assert len(vals) == 2 and vals[0] == 0.0 and vals[1] == pytest.approx(1 / 0.7)
    assert torch.equal(drop_path(x, 0.3, training=False), x)


def test_network_sets_drop_path_through_its_api():
    m = build_network(GENOTYPES["DARTS_V2"], num_classes=3, init_channels=8, layers=3, auxiliary=False)
    m.set_drop_path(0.2)
    probs = {d.drop_prob for d in m.modules() if isinstance(d, DropPath)}
    assert probs == {0.2}


def test_builder_validates():
    with pytest.raises(ValueError, match="layers"):
        build_network(GENOTYPES["DARTS_V2"], num_classes=3, layers=2)
    with pytest.raises(ValueError, match="even"):
        build_network(GENOTYPES["DARTS_V2"], num_classes=3, init_channels=7)


def test_a_compiled_network_does_not_compile_again_as_drop_path_ramps():
    """The trainer moves drop path every epoch; a compiled network sees it as a tensor: one graph with drop
    path off (epoch 0) and one with it on, not one per epoch (traced by dynamo only, no code generated)."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    m = build_network(GENOTYPES["DARTS_V2"], num_classes=3, in_channels=1, init_channels=8, layers=3, auxiliary=False)
    counter = CompileCounter()
    compiled = torch.compile(m, backend=counter)
    x = torch.randn(4, 1, 8, 8)
    for epoch in range(5):
        m.set_drop_path(0.3 * epoch / 5)
        compiled(x).sum().backward()
    assert counter.frame_count <= 2, counter.frame_count
    torch._dynamo.reset()


def test_imagenet_aux_head_has_no_batchnorm_after_the_768_conv():
    assert not any(isinstance(m, torch.nn.BatchNorm2d) and m.num_features == 768
                   for m in AuxiliaryHead(64, 10, imagenet=True).modules())  # fmt: skip
    assert any(isinstance(m, torch.nn.BatchNorm2d) and m.num_features == 768
               for m in AuxiliaryHead(64, 10, imagenet=False).modules())  # fmt: skip
