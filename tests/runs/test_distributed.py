"""Two gloo processes on the CPU under torchrun: one architecture, ranks in agreement."""

import json
import os
import subprocess
import sys

import pytest

from pcdarts.nas.genotype import Genotype
from tests.tiny import ENV, TINY_DIGITS


def _torchrun(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "pcdarts", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)


@pytest.mark.slow
def test_two_process_search_and_training(tmp_path):
    s = tmp_path / "search"
    args = [*TINY_DIGITS, "--epochs", "2", "--batch-size", "128", "--warmup-epochs", "1"]
    r = _torchrun("search", *args, "--out", str(s), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    g = Genotype.from_dict(json.loads((s / "genotype.json").read_text()))
    assert r.stdout.count('"normal"') == 1  # rank 0 alone prints the genotype
    assert "ranks agree on alpha/beta" in r.stderr
    metrics = [json.loads(x) for x in (s / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2 and all(m["ranks_agree"] for m in metrics)
    env = json.loads((s / "environment.json").read_text())
    assert env["world_size"] == 2
    t = tmp_path / "train"
    r = _torchrun("train", "--genotype", str(s), *TINY_DIGITS, "--epochs", "2", "--batch-size", "128", "--out", str(t))
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads((t / "result.json").read_text())
    assert result["world_size"] == 2 and Genotype.from_dict(result["genotype"]) == g


@pytest.mark.slow
def test_resume_under_torchrun_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    import signal
    import time

    import torch

    args = [*TINY_DIGITS, "--epochs", "3", "--warmup-epochs", "1", "--batch-size", "128"]
    cut, ref = tmp_path / "cut", tmp_path / "ref"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "pcdarts",
        "search",
        *args,
        "--out",
        str(cut),
    ]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    while time.time() - t0 < 240 and proc.poll() is None:
        ck = cut / "checkpoint.pt"
        if ck.is_file():
            try:
                if torch.load(ck, weights_only=True)["epoch"] >= 1:
                    break
            except Exception:
                pass
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher ...
    proc.wait()
    # ... and both ranks, which torchrun starts in sessions of their own (left alive, they would go on
    # writing into the folder next to the resumed run; the run-folder lock now refuses that)
    subprocess.run(["pkill", "-9", "-f", f"out {cut}$"], check=False)
    time.sleep(0.5)
    if (cut / "genotype.json").exists():
        pytest.skip("the run finished before it could be killed")
    r = _torchrun("search", *args, "--out", str(cut), "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert _torchrun("search", *args, "--out", str(ref)).returncode == 0
    assert (cut / "genotype.json").read_text() == (ref / "genotype.json").read_text()
    assert (cut / "arch.json").read_text() == (ref / "arch.json").read_text()
