"""runs.metrics: the per-epoch log (and its TensorBoard folder) never writes through a link."""

import pytest

from pcdarts.errors import RunError
from pcdarts.files import append_line
from pcdarts.runs.metrics import MetricsLog


def test_logs_are_never_written_through_a_link(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "metrics.jsonl"  # a dangling link's target: must not be created
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").symlink_to(elsewhere)
    with pytest.raises(RunError, match="is a link"):
        append_line(run / "metrics.jsonl", "{}")
    log = MetricsLog(run / "metrics.jsonl", resume_epoch=3, tensorboard=False)  # a resume keeps the log it finds
    with pytest.raises(RunError, match="is a link"):
        log.write({"epoch": 4})
    assert not elsewhere.exists() and not elsewhere.parent.exists()
    fresh = MetricsLog(run / "metrics.jsonl", tensorboard=False)  # a new run replaces the link by its own file
    fresh.write({"epoch": 1})
    assert not (run / "metrics.jsonl").is_symlink() and not elsewhere.exists()


def test_a_tensorboard_folder_that_is_a_link_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (run / "tb").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RunError, match="tb is a link or not a folder"):
        MetricsLog(run / "metrics.jsonl", tensorboard=True)
    assert not any((tmp_path / "elsewhere").iterdir())
