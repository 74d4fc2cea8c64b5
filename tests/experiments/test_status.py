"""experiments.status: where a running study stands, read from its folder, with no result in it."""

import json

from pcdarts.cli import main
from tests.conftest import one_line


def _study_folder(root):
    """A study of 2 arms x 2 searches, 3 random cells and 1 second training: 3 units finished, 1 in progress."""
    root.mkdir()
    arms = [{"name": "pcdarts", "overrides": {"k": 4}}, {"name": "darts", "overrides": {"k": 1}}]
    pin = {"dataset": "fashion-mnist", "arms": arms, "searches": 2, "random_cells": 3, "retrain_random": 1}
    (root / "study_config.json").write_text(json.dumps(pin))
    cells = [
        {"arm": "pcdarts", "kind": "searched", "seed": 0, "test_accuracy": 0.8731, "search_seconds": 3000,
         "oneshot_seconds": 300, "train_seconds": 300},
        {"arm": "random", "kind": "random", "seed": 0, "test_accuracy": 0.8642, "train_seconds": 360},
        {"arm": "random", "kind": "random", "seed": 1, "test_accuracy": 0.8555, "train_seconds": 480},
    ]  # fmt: skip
    (root / "study.json").write_text(json.dumps({"complete": False, "cells": cells}))
    run = root / "search" / "s1234-seed0"
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"any")
    (run / "config.json").write_text(json.dumps({"epochs": 30}))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e}) + "\n" for e in (1, 2, 3)))
    done = root / "train" / "g1-e20-t0"  # a finished training keeps its checkpoint until the study removes it
    done.mkdir(parents=True)
    (done / "checkpoint.pt").write_bytes(b"any")
    (done / "result.json").write_text("{}")
    return root


def test_the_status_counts_units_runs_in_progress_and_time_left_but_no_result(tmp_path, capsys):
    from pcdarts.experiments.status import study_status

    folder = _study_folder(tmp_path / "study")
    status = study_status(folder)
    assert status["planned"] == {"pcdarts": 2, "darts": 2, "random": 3, "random-retrain": 1}
    assert (status["units"], status["units_finished"]) == (8, 3)
    assert status["in_progress"] == [{"run": "search/s1234-seed0", "epoch": 3, "epochs": 30}]
    # left: 3 searched cells at 3600 s and 1 random cell at the median 420 s; the second training is unknown
    assert status["seconds_left"] == 3 * 3600 + 420 and status["unknown_kinds"] == ["retrain"]
    assert main(["study", "--status", "--out", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "3 of 8 units finished (pcdarts 1/2, darts 0/2, random 2/3, random-retrain 0/1)" in out
    assert "search/s1234-seed0 epoch 3 of 30" in out and "about 3.1 hours of one process" in out
    assert "second trainings (none finished yet)" in out
    assert not any(a in out for a in ("0.87", "87.3", "0.86", "86.4", "85.5", "accuracy"))  # no result shown


def test_the_status_of_a_folder_without_a_study_is_one_line(tmp_path, capsys):
    assert main(["study", "--status", "--out", str(tmp_path)]) == 2
    assert "holds no study" in one_line(capsys)
