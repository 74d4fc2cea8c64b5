"""The benchmark command runs end to end on a tiny config and its arithmetic is right (no timings asserted)."""

import argparse
import json

import pytest
import torch

from pcdarts import bench
from tests.tiny import TINY_BENCH


def test_projection_adds_warmup_search_and_eval_epochs():
    args = argparse.Namespace(project_images=1000, batch=100, project_warmup=2, project_epochs=5)
    row = {"search": {"median_s": 3.0}, "weight_step": {"median_s": 1.0}, "eval_step": {"median_s": 0.5}}
    # 10 steps per epoch: 2 warm-up epochs x 1 s + 3 search epochs x 3 s + 5 eval passes x 0.5 s = 13.5 s per step
    assert bench.project_search_minutes(row, args) == pytest.approx(10 * 13.5 / 60)


def test_step_benchmark_json_has_both_modes_and_ratios(capsys):
    assert bench.main(["step", "--baseline", "--json", *TINY_BENCH]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["mode"] for r in res["rows"]] == ["optimised", "baseline"]
    for r in res["rows"]:
        for part in ("search", "weight_step", "eval_step", "train"):
            assert 0 < r[part]["min_s"] <= r[part]["median_s"] <= r[part]["max_s"]
        assert r["projected_search_min"] > 0
    assert res["search_speedup"] == pytest.approx(
        res["rows"][1]["search"]["median_s"] / res["rows"][0]["search"]["median_s"]
    )
    assert res["machine"]["threads"] == 1


def test_memory_benchmark_shrinks_saved_activations_with_k(capsys):
    assert bench.main(["memory", "--ks", "1", "2", "--json", *TINY_BENCH]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows"]
    assert [r["k"] for r in rows] == [1, 2]
    assert rows[0]["saved_vs_k1"] == 1.0 and 0 < rows[1]["saved_vs_k1"] < 1.0


def test_memory_by_module_accounts_for_every_saved_byte(capsys):
    assert bench.main(["memory", "--by-module", "--json", "--k", "2", *TINY_BENCH]) == 0
    tables = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["tables"]
    lean, ref = sum(tables["optimised"].values()), sum(tables["baseline"].values())
    assert 0 < lean < ref  # the lean supernet keeps less than the reference habits on the same parameters
    assert any("MixedOp" in where for where in tables["baseline"])


def test_recompute_benchmark_compares_each_mode_with_the_reference(capsys):
    assert bench.main(["recompute", "--json", *TINY_BENCH]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows"]
    assert [r["mode"] for r in rows] == ["reference habits", "recompute none", "recompute edges", "recompute cells"]
    ref = rows[0]["search_peak_mib"]  # RSS growth: can be 0 at this tiny size, and then no ratio is given
    for r in rows:
        assert r["search"]["median_s"] > 0
        assert r["peak_vs_reference"] == (pytest.approx(r["search_peak_mib"] / ref) if ref > 0 else None)
    assert all(r["batch_fitting_budget"] >= 8 for r in rows[1:])


def test_fanout_benchmark_times_the_same_supernet_both_ways(capsys, monkeypatch):
    from pcdarts.nas.fanout import FanOut

    fans = []
    forward = FanOut.forward
    monkeypatch.setattr(FanOut, "forward", lambda self, *a: fans.append(1) or forward(self, *a))
    assert bench.main(["fanout", "--json", *TINY_BENCH]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(res["rows"]) == ["fan-out", "edge by edge"]
    for r in res["rows"].values():
        assert 0 < r["search"]["min_s"] <= r["search"]["median_s"] <= r["search"]["max_s"]
    assert res["search_speedup"] == pytest.approx(
        res["rows"]["edge by edge"]["search"]["median_s"] / res["rows"]["fan-out"]["search"]["median_s"]
    )
    # warm-up + 1 repeat, each an arch step, a weight step and an evaluation, 3 cells x 5 states: only one side fans
    assert len(fans) == 2 * 3 * 15


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["step", "--k", "3"], "divisible by K"),
        (["step", "--repeats", "0"], "--repeats must be >= 1"),
        (["memory", "--layers", "2"], "must be >= 3"),
        (["step", "--device", "tpu:x"], "unknown device"),
        (["step", "--precision", "fp16"], "fp16 autocast needs --device cuda"),
        (["step", "--project-warmup", "60"], "--project-warmup <= --project-epochs"),
    ],
)
def test_bad_settings_get_one_line_and_exit_2(argv, says, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and err.startswith("pcdarts bench: error:")


def test_cuda_asked_without_cuda_is_one_line(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert bench.main(["step", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_a_failing_measurement_process_is_reported_in_one_line(monkeypatch, capsys):
    import subprocess

    def fail(*a, **k):
        raise subprocess.CalledProcessError(1, ["python"], output="", stderr="Traceback...\nRuntimeError: boom\n")

    from pcdarts.bench import commands

    monkeypatch.setattr(commands.subprocess, "run", fail)
    assert bench.main(["step", *TINY_BENCH]) == 2
    assert capsys.readouterr().err.strip() == "pcdarts bench: error: RuntimeError: boom"


def test_the_prepared_gpu_check_runs_its_parts_on_a_cpu(tmp_path):
    """scripts/gpu_check.py runs on a machine with a GPU: each of its parts must also run on a CPU."""
    import importlib.util
    import json
    from pathlib import Path

    import torch

    path = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    small = ["--device", "cpu", "--out", str(tmp_path), "--batch", "32", "--channels", "4", "--layers", "3"]
    for part in ("env", "numerics", "syncs", "run"):
        assert mod.main([part, *small]) == 0
    numerics = json.loads((tmp_path / "numerics.json").read_text())
    assert numerics["ok"] and all(v < 1e-8 for k, v in numerics.items() if k.endswith("diff"))
    assert numerics["bf16_vs_fp32"]["ok"] and numerics["bf16_vs_fp32"]["fanned_cells"] == 5
    assert json.loads((tmp_path / "run.json").read_text())["search_seconds"] > 0
    assert json.loads((tmp_path / "env.json").read_text())["torch"] == torch.__version__


def test_the_auto_batch_probe_backs_off_on_every_way_cuda_says_out_of_memory():
    from pcdarts.runs.memory import is_out_of_memory

    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"))
    assert is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"))
    assert not is_out_of_memory(RuntimeError("Expected all tensors to be on the same device"))  # a real bug
    assert not is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED"))  # not always memory


def test_bench_limit_prints_the_peak_and_each_steps_share_of_it():
    import json
    import subprocess
    import sys

    args = [*TINY_BENCH, "--json"]
    out = subprocess.run([sys.executable, "-m", "pcdarts", "bench", "limit", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout)
    assert res["peak"]["peak_gflops"] == max(res["peak"]["matmul_gflops"], res["peak"]["conv_gflops"]) > 0
    for name in ("search", "train"):
        step = res["steps"][name]
        assert step["flops"] > 0 and step["seconds"] > 0
        assert abs(step["of_peak"] - step["flops"] / step["seconds"] / 1e9 / res["peak"]["peak_gflops"]) < 1e-9


@pytest.mark.parametrize("cell", ["darts", "nasbench201"])
def test_bench_profile_puts_every_op_of_the_step_in_one_kind(cell):
    import argparse

    from pcdarts.bench.profile import KINDS, print_profile, profile_bench

    args = argparse.Namespace(cell=cell, channels=4, layers=3, k=2, batch=4, size=8, repeats=1, threads=1,
                              device="cpu")  # fmt: skip
    res = profile_bench(args)
    kinds = res["kinds"]
    assert set(kinds) == set(KINDS) and abs(sum(r["share"] for r in kinds.values()) - 1) < 1e-9
    assert kinds["depthwise conv" if cell == "darts" else "dense conv"]["calls"] > 0  # the candidate convs
    assert kinds["optimisers"]["calls"] > 0 and kinds["batch norm"]["calls"] > 0 and kinds["pooling"]["calls"] > 0
    assert kinds["other"]["share"] < 0.2  # the kinds name nearly all of the work
    assert 0 <= res["outside_ops_share"] < 1 and res["wall_seconds"] > 0
    print_profile(res)


def test_the_baseline_is_the_darts_cells(capsys):
    from pcdarts.bench.commands import main as bench

    assert bench(["step", "--baseline", "--cell", "nasbench201", "--threads", "1"]) == 2
    assert "--cell darts" in capsys.readouterr().err
