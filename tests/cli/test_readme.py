"""The README's and the guide pages' commands and code run as written: each CLI line runs here, or is listed
with why it cannot."""

import re
import shlex
import shutil
from pathlib import Path

import pytest

from pcdarts.cli import main

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide"
PAGES = [ROOT / "README.md", GUIDE / "usage.md", *sorted(set(GUIDE.glob("*.md")) - {GUIDE / "usage.md"})]
README = "\n".join(p.read_text() for p in PAGES)  # every page a user reads for how to run something

# Lines that need what a test machine does not have; each says why. A README line neither run nor
# listed here fails the inventory test, so new lines get tested or consciously excluded.
NOT_RUN = {
    "make demo": "the whole demo (minutes); the same code runs in the usage lines",
    "make test": "the suite itself",
    "pcdarts subsample --data /data/imagenet": "needs ImageNet",
    "pcdarts search --dataset imagenet": "needs ImageNet",
    "pcdarts train --preset paper --dataset cifar10 --data /data/cifar": "needs CIFAR-10",
    "torchrun": "multi-device (tests/runs/test_distributed.py runs torchrun on two CPU processes)",
}


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _lines() -> list[str]:
    out = []
    for block in _blocks("bash"):
        block = block.replace("\\\n", " ")
        out += [ln.split("  #")[0].strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    return out


def _runnable() -> list[str]:
    return [ln for ln in _lines() if not any(ln.startswith(k) for k in NOT_RUN)]


def test_inventory_every_line_is_run_or_excused():
    lines = _lines()
    assert len(lines) >= 12
    for ln in lines:
        assert ln.startswith(("pcdarts ", "make ", "torchrun ")), ln
    assert any(ln.startswith("pcdarts search --dataset digits") for ln in _runnable())


# Lines that use what an earlier line made run in order in one chain; the chains run as separate tests, so
# the test workers share them. A line naming none of these folders stands alone.
CHAINS = {"digits": ("runs/s1", "runs/t1"), "pt": ("runs/pt-",), "fidelity": ("runs/fid",), "nb201": ("runs/nb201",)}


def _chain(line: str) -> str:
    return next((name for name, marks in CHAINS.items() if any(m in line for m in marks)), "standalone")


def test_every_chain_has_lines():
    assert {_chain(ln) for ln in _runnable()} == {*CHAINS, "standalone"}


@pytest.mark.slow
@pytest.mark.parametrize("chain", [*CHAINS, "standalone"])
def test_usage_lines_run_as_written(chain, tmp_path, monkeypatch, capsys):
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "sample_digit.png", tmp_path / "docs")
    monkeypatch.chdir(tmp_path)
    for line in (ln for ln in _runnable() if _chain(ln) == chain):
        args = shlex.split(line)[1:]
        code = main(args)
        captured = capsys.readouterr()
        assert code == 0, (line, captured.err[-2000:])
        if args[0] == "predict":
            assert captured.out.startswith("docs/sample_digit.png: ")
    if chain == "digits":
        assert (tmp_path / "runs" / "t1" / "report.html").is_file() and (tmp_path / "model.onnx").is_file()


@pytest.mark.slow
def test_library_example_runs_as_written(tmp_path, monkeypatch, capsys):
    """Every call of the example, as written; the digits defaults shrunk to a tiny supernet and network on a
    quarter of the train split (360 of 1,440 images): the usage lines above run them at their real size."""
    from pcdarts.runs.presets import DATASET_DEFAULTS

    block = _blocks("python")[0]
    for kind in ("search", "train"):
        small = {
            **DATASET_DEFAULTS[kind]["digits"],
            "layers": 3,
            "init_channels": 4,
            "image_size": 8,
            "train_images": 360,
        }
        monkeypatch.setitem(DATASET_DEFAULTS[kind], "digits", small)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "normal" in out and "val" in out


@pytest.mark.slow
def test_custom_op_example_runs_as_written(tmp_path, monkeypatch, capsys):
    """The README's own-op example: register, search with it, derive; its op is in the table afterwards."""
    from pcdarts.nas.candidates import OPS

    (block,) = [b for b in _blocks("python") if "register_op" in b]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    assert "normal" in capsys.readouterr().out
    arch = (tmp_path / "runs" / "my-ops" / "arch.json").read_text()
    assert '"conv_3x3_gelu"' in arch and "conv_3x3_gelu" in OPS
    assert len(_blocks("python")) == 2  # both blocks are run by a test
