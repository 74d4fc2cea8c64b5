import json
import os
import time

import pytest
import torch

from pcdarts import GENOTYPES, Genotype, GenotypeError, derive_genotype, load_genotype, parse_genotype_text
from pcdarts.cli import main
from pcdarts.nas.candidates import PRIMITIVES
from tests.conftest import assert_refused, one_line

NONE, SEP3, SKIP, MAX = (PRIMITIVES.index(n) for n in ("none", "sep_conv_3x3", "skip_connect", "max_pool_3x3"))


def _alphas(fill=0.0):
    return torch.full((14, 8), fill)


def test_derive_never_picks_none_and_takes_two_inputs_per_node():
    a = torch.randn(14, 8)
    a[:, NONE] = 100.0  # none dominates everywhere
    g = derive_genotype(a, a.clone())
    assert all(op != "none" for op, _ in g.normal + g.reduce)
    for node in range(4):
        ins = [i for _, i in g.normal[2 * node : 2 * node + 2]]
        assert len(set(ins)) == 2 and all(0 <= i < node + 2 for i in ins)
    assert g.normal_concat == (2, 3, 4, 5)


def test_derive_hand_built_choice():
    a = _alphas()
    a[0, SEP3] = 5.0  # node 0 edge from input 0: sep_conv_3x3
    a[1, SKIP] = 4.0  # node 0 edge from input 1: skip
    g = derive_genotype(a, _alphas())
    assert g.normal[:2] == (("sep_conv_3x3", 0), ("skip_connect", 1))


def test_beta_changes_the_choice_when_it_should():
    a = _alphas()
    # node 1 (edges 2,3,4 from inputs 0,1,2): alpha prefers inputs 0 and 1 ...
    a[2, SEP3] = 3.0
    a[3, SEP3] = 3.0
    a[4, MAX] = 2.5
    b = torch.zeros(14)
    g_plain = derive_genotype(a, _alphas(), b, torch.zeros(14))
    assert sorted(i for _, i in g_plain.normal[2:4]) == [0, 1]
    b[4] = 5.0  # ... but beta strongly favours the edge from node 0 (state 2)
    g_beta = derive_genotype(a, _alphas(), b, torch.zeros(14))
    assert ("max_pool_3x3", 2) in g_beta.normal[2:4]


def test_ties_keep_pythons_stable_order():
    g = derive_genotype(_alphas(), _alphas())
    assert [i for _, i in g.normal] == [0, 1, 0, 1, 0, 1, 0, 1]
    assert all(op == "max_pool_3x3" for op, _ in g.normal)  # first non-none op on ties


@pytest.mark.parametrize("name", sorted(GENOTYPES))
def test_json_and_text_round_trips(name):
    g = GENOTYPES[name]
    assert Genotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    assert parse_genotype_text(g.to_text()) == g


def test_reference_text_form_with_range():
    text = (
        "PC_DARTS = Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), "
        "('dil_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], "
        "normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), "
        "('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], "
        "reduce_concat=range(2, 6))"
    )
    assert parse_genotype_text(text) == GENOTYPES["PC_DARTS_cifar"]


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('touch /tmp/pcdarts_pwned')",
        "Genotype(normal=__import__('os').system('touch /tmp/pcdarts_pwned'), reduce=[])",
        "Genotype(normal=[(open('/etc/passwd').read(), 0)], reduce=[])",
        "Genotype(normal=[('sep_conv_3x3', 0)]*8, normal_concat=range(2,6), reduce=[], reduce_concat=[])",
        "import os; Genotype()",
    ],
)
def test_malicious_text_is_refused_and_never_runs(text, tmp_path):

    with pytest.raises(GenotypeError):
        parse_genotype_text(text)
    assert not os.path.exists("/tmp/pcdarts_pwned")


@pytest.mark.parametrize(
    "data,match",
    [
        ({"normal": [["sep_conv_3x3", 0]], "reduce": []}, "two"),
        (
            {"normal": [["conv_9x9", 0], ["sep_conv_3x3", 1]], "reduce": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]]},
            "unknown",
        ),
        (
            {
                "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 2]],
                "reduce": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]],
            },
            "input 2",
        ),
        ({"reduce": []}, "lacks"),
        ([1, 2], "object"),
    ],
)
def test_malformed_genotypes_are_clear_errors(data, match):
    with pytest.raises(GenotypeError, match=match):
        Genotype.from_dict(data)


def test_load_genotype_by_name_file_folder_and_text(tmp_path):
    g = GENOTYPES["DARTS_V2"]
    assert load_genotype("DARTS_V2") == g
    (tmp_path / "genotype.json").write_text(json.dumps({**g.to_dict(), "extra": 1}))
    assert load_genotype(str(tmp_path / "genotype.json")) == g
    assert load_genotype(str(tmp_path)) == g
    assert load_genotype(g.to_text()) == g
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(GenotypeError, match="bad.json is not readable JSON: give an intact genotype.json"):
        load_genotype(str(tmp_path / "bad.json"))
    with pytest.raises(GenotypeError, match="malformed genotype JSON"):  # the same text given inline
        load_genotype("{not json")
    with pytest.raises(GenotypeError, match="not a built-in"):
        load_genotype("NO_SUCH")


def test_builtins_include_the_published_ones():
    for name in ("PC_DARTS_cifar", "PC_DARTS_image", "DARTS_V1", "DARTS_V2", "NASNet", "AmoebaNet"):
        assert name in GENOTYPES
    assert GENOTYPES["NASNet"].steps == 5


@pytest.mark.parametrize(
    "text",
    [
        "Genotype(normal=a" + ".b" * 20000 + ")",
        "Genotype(" + "+".join(["1"] * 30000) + ")",
        "Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=range(0, 12345678901234567890))",
        "Genotype(" + "(" * 5000 + ")" * 5000 + ")",
    ],
    ids=["attribute-chain", "long-sum", "huge-range", "deep-nesting"],
)
def test_hostile_genotype_text_is_one_line(text, capsys):
    with pytest.raises(GenotypeError):
        parse_genotype_text(text)
    assert main(["info", "--genotype", text]) == 2
    one_line(capsys)


def test_derivation_refuses_arch_states_that_do_not_fit():
    from pcdarts.nas.derive import derive_from_arch
    from pcdarts.nas.genotype import GenotypeError

    good = torch.zeros(14, 8).tolist()
    cases = [
        {"alphas_normal": 1.0, "alphas_reduce": good},
        {"alphas_normal": good, "alphas_reduce": [[0.0] * 7] * 14},
        {"alphas_normal": good, "alphas_reduce": torch.zeros(20, 8).tolist()},
        {"alphas_normal": [[float("nan")] * 8] * 14, "alphas_reduce": good},
    ]
    for bad in cases:
        with pytest.raises(GenotypeError):
            derive_from_arch(bad)


G = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], reduce=[('max_pool_3x3', 0), ('skip_connect', 1)]"


GENOTYPE_TEXT_CASES = {
    "genotype-list-of-int": (["info", "--genotype", G + ", normal_concat=list(5))"], "takes a list or tuple"),
    "genotype-tuple-of-str": (["info", "--genotype", G + ", normal_concat=tuple('2345'))"], "takes a list or tuple"),
    "genotype-huge-range": (["info", "--genotype", G + ", normal_concat=range(10**12))"], "literals"),
    "genotype-big-range": (["info", "--genotype", G + ", normal_concat=range(50000000))"], "more than a cell can have"),
    "genotype-attribute-chain": (["info", "--genotype", "Genotype(normal=a" + ".b" * 20000 + ")"], "chains too deeply"),
    "genotype-long-sum": (["info", "--genotype", "Genotype(" + "+".join(["1"] * 30000) + ")"], "chains too deeply"),
    "genotype-20-digit-range": (
        ["info", "--genotype", G + ", normal_concat=range(0, 12345678901234567890))"],
        "too deep or too large",
    ),  # fmt: skip
    "genotype-repeated-keyword": (["info", "--genotype", G + ", normal=[])"], "given twice"),
    "genotype-duplicate-concat": (["info", "--genotype", G + ", normal_concat=[2, 2])"], "repeats a node"),
    "genotype-concat-of-inputs": (
        ["info", "--genotype", G + ", normal_concat=[0, 1])"],
        "must include an intermediate",
    ),
    "genotype-too-many-pairs": (
        ["info", "--genotype", "Genotype(normal=" + repr([("skip_connect", 0)] * 200) + ", reduce=[])"],
        "more than the 32 supported",
    ),
}


@pytest.mark.parametrize("argv,message", GENOTYPE_TEXT_CASES.values(), ids=GENOTYPE_TEXT_CASES.keys())
def test_hostile_genotype_text_is_a_one_line_error_from_the_cli(argv, message, tmp_path, capsys):
    assert_refused(argv, message, tmp_path, capsys)


def test_range_is_measured_before_it_is_built():
    t0 = time.time()
    with pytest.raises(GenotypeError):
        parse_genotype_text(G + ", normal_concat=range(0, 10**15, 1))")
    assert time.time() - t0 < 1


def test_non_utf8_genotype_file_names_the_file(tmp_path, capsys):
    bad = tmp_path / "cell.json"
    bad.write_bytes(b"\xff\xfe{\x00")
    assert main(["info", "--genotype", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not UTF-8" in err
