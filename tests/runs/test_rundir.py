"""Run folders: RunDir, RunLock and check_out_path. Locks that are links or FIFOs, folders of the user's own
(files that only look like a run's, study and calibration folders), outputs that would overwrite a run's files
or the user's, and --overwrite removing only what the run wrote."""

import fcntl
import os
import shutil
from pathlib import Path

import pytest

from pcdarts.cli import main
from pcdarts.errors import RunError
from pcdarts.files import is_run_folder
from pcdarts.runs.rundir import RunBusy, RunDir, RunLock, check_out_path
from tests.conftest import one_line
from tests.tiny import TINY_SEARCH
from tests.tiny import TINY_TRAIN as TINY


@pytest.mark.parametrize("where", ["new folder", "finished run"])
def test_a_lock_that_is_a_link_is_refused_and_its_target_untouched(tmp_path, capsys, tiny_train, where):
    precious = tmp_path / "precious.txt"
    precious.write_text("my thesis")
    if where == "new folder":
        out = tmp_path / "fresh"
        out.mkdir()
    else:
        out = tmp_path / "copy"
        shutil.copytree(tiny_train, out)
    (out / ".lock").symlink_to(precious)
    args = ["train", "--genotype", "DARTS_V2", *TINY, "--out", str(out)]
    assert main(args + (["--overwrite"] if where == "finished run" else [])) == 2
    assert "is a link: pcdarts never writes through one" in one_line(capsys)
    assert precious.read_text() == "my thesis"


def test_a_lock_that_is_a_fifo_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    os.mkfifo(out / ".lock")
    assert main(["search", *TINY, "--out", str(out)]) == 2
    assert "not a regular file" in one_line(capsys)


def test_files_named_like_a_runs_do_not_make_a_run_and_overwrite_cannot_delete_them(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    mine = {"config.json": '{"learning": "notes"}', "metrics.jsonl": "{}\n", "report.html": "<p>mine</p>"}
    for name, text in mine.items():
        (out / name).write_text(text)
    assert not is_run_folder(out)
    for extra in ([], ["--overwrite"], ["--resume"]):
        assert main(["search", *TINY, "--out", str(out), *extra]) == 2
        err = one_line(capsys)
        assert "holds no pcdarts run" in err or "nothing to resume" in err
    assert {p.name: p.read_text() for p in out.iterdir()} == mine


def test_export_and_report_never_overwrite_a_runs_files_and_ask_before_any_other(tiny_train, tmp_path, capsys):
    trained = tmp_path / "run"
    shutil.copytree(tiny_train, trained)  # its report.html is renewed at the end: a copy, the shared run stays whole
    before = {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()}
    for name in ("best.pt", "result.json", "metrics.jsonl", "config.json"):
        assert main(["export", "--checkpoint", str(trained), "--format", "torchscript", "--overwrite",
                     "--out", str(trained / name)]) == 2  # fmt: skip
        assert "one of its run's own files" in one_line(capsys)
        assert main(["report", str(trained), "--overwrite", "--out", str(trained / name)]) == 2
        assert "one of its run's own files" in one_line(capsys)
    assert {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()} == before
    mine = tmp_path / "model.pt"
    mine.write_text("the user's file")
    assert main(["export", "--checkpoint", str(trained), "--format", "torchscript", "--out", str(mine)]) == 2
    assert "exists: pass --overwrite" in one_line(capsys)
    side = tmp_path / "other.pt"
    (tmp_path / "other.pt.json").write_text("the user's notes")  # the metadata file the user never named
    assert main(["export", "--checkpoint", str(trained), "--format", "torchscript", "--out", str(side)]) == 2
    assert "other.pt.json exists" in one_line(capsys)
    assert mine.read_text() == "the user's file" and (tmp_path / "other.pt.json").read_text() == "the user's notes"
    assert not side.exists()
    assert (
        main(["export", "--checkpoint", str(trained), "--format", "torchscript", "--out", str(mine), "--overwrite"])
        == 0
    )
    page = tmp_path / "page.html"
    page.write_text("mine")
    assert main(["report", str(trained), "--out", str(page)]) == 2
    assert "exists" in one_line(capsys) and page.read_text() == "mine"
    assert main(["report", str(trained)]) == 0  # the run's own report.html is the default and is renewed


@pytest.mark.parametrize("command", ["study", "fidelity"])
def test_study_and_fidelity_refuse_a_folder_of_the_users_own(tmp_path, capsys, command):
    out = tmp_path / "results"
    out.mkdir()
    (out / "study.png").write_text("my picture")
    (out / "fidelity.png").write_text("my other picture")
    args = [command, "--dataset", "synthetic", "--out", str(out), "--threads", "1", "--no-progress"]
    calibration = ["--cells", "3", "--seed-cells", "1", "--budgets", "1,2"]
    args += ["--random", "2", "--searches", "0"] if command == "study" else calibration
    assert main(args) == 2
    assert "not empty and holds no pcdarts" in one_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["fidelity.png", "study.png"]
    assert (out / "study.png").read_text() == "my picture"


def test_plot_and_subsample_ask_before_overwriting_and_protect_results(tmp_path, capsys):
    mine = tmp_path / "cell.png"
    mine.write_text("my picture")
    assert main(["plot", "--genotype", "DARTS_V2", "--out", str(mine)]) == 2
    assert "exists: pass --overwrite" in one_line(capsys) and mine.read_text() == "my picture"
    assert main(["plot", "--genotype", "DARTS_V2", "--out", str(mine), "--overwrite"]) == 0
    capsys.readouterr()
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text("{}")
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "b").mkdir()
    assert main(["subsample", "--data", str(tmp_path / "imgs"), "--out", str(study / "study.json"),
                 "--overwrite"]) == 2  # fmt: skip
    assert "one of its run's own files" in one_line(capsys) and (study / "study.json").read_text() == "{}"


def test_a_folder_of_the_users_own_files_is_refused_and_left_as_it_was(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"mine": true}')
    (out / "arch.json").write_text("my notes")
    assert main(["search", *TINY_SEARCH, "--out", str(out)]) == 2
    assert "not empty and holds no pcdarts run" in one_line(capsys)
    assert (out / "config.json").read_text() == '{"mine": true}' and (out / "arch.json").read_text() == "my notes"
    assert sorted(p.name for p in out.iterdir()) == ["arch.json", "config.json"]


def test_overwrite_removes_only_what_the_run_wrote(tmp_path):
    out = tmp_path / "run"
    RunDir(out, kind="search", final="genotype.json")
    for name in ("checkpoint.pt", "metrics.jsonl", "genotype.json"):
        (out / name).write_text("old run")
    (out / "environment.json").write_text('{"pcdarts": "0.1.0", "torch": "2.13.0"}')  # what marks a run
    (out / "tb").mkdir()
    (out / "tb" / "events.out.tfevents.1.host").write_text("old events")
    (out / "tb" / "my_notes.txt").write_text("keep me")
    (out / "paper.pdf").write_text("keep me too")
    RunDir(out, kind="search", overwrite=True, final="genotype.json")
    assert sorted(p.name for p in out.iterdir()) == ["paper.pdf", "tb"]
    assert [p.name for p in (out / "tb").iterdir()] == ["my_notes.txt"]


@pytest.mark.parametrize("target", ["/", "/usr", "~"])
def test_obviously_wrong_targets_are_refused(target, capsys):
    with pytest.raises(RunError, match="refusing to write a run into"):
        check_out_path(target)
    assert main(["search", *TINY_SEARCH, "--out", target]) == 2
    assert "refusing to write a run into" in one_line(capsys)
    assert not Path("/.lock").exists()


def test_a_symlink_loop_as_out_is_one_line(tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(RunError, match="cannot be resolved"):
        check_out_path(tmp_path / "a")
    assert main(["search", "--dataset", "synthetic", "--out", str(tmp_path / "a")]) == 2
    assert "cannot be resolved" in one_line(capsys)


def test_a_second_lock_on_a_folder_is_refused_until_the_first_is_released(tmp_path):
    with RunLock(tmp_path / "r"):
        with pytest.raises(RunBusy, match="in use by process"):
            RunLock(tmp_path / "r").__enter__()
    with RunLock(tmp_path / "r"):  # released: free again
        pass


def test_a_run_folder_in_use_is_refused_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    held = os.open(out / ".lock", os.O_CREAT | os.O_RDWR)  # another holder of the OS lock (a second open file)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(held, str(os.getppid()).encode())
    args = ["search", *TINY_SEARCH, "--out", str(out)]
    assert main(args) == 2
    assert f"in use by process {os.getppid()}" in capsys.readouterr().err
    os.close(held)  # as a killed process's lock: the kernel releases it, the pid stays in the file
    assert (out / ".lock").read_text() == str(os.getppid())
    assert main(args) == 0
    assert not (out / ".lock").exists() and (out / "genotype.json").is_file()
