"""runs.formats: epochs count from 1 in every file a run writes, and runs written before (format 1, from 0) are
read, resumed and extended the same."""

import json

import torch

from pcdarts.cli import main
from tests.tiny import QUARTER_SEARCH, QUARTER_TRAIN


def _to_format_1(run):
    """Rewrite a run's files as pcdarts wrote them before format 2: epochs counted from 0 in files."""
    for name in ("metrics.jsonl", "arch_history.jsonl"):
        if (run / name).is_file():
            rows = [json.loads(ln) for ln in (run / name).read_text().splitlines()]
            (run / name).write_text("".join(json.dumps({**r, "epoch": r["epoch"] - 1}) + "\n" for r in rows))
    for name in ("result.json", "search_result.json"):
        if (run / name).is_file():
            r = json.loads((run / name).read_text())
            del r["format"]
            if "selected_epoch" in r:
                r["selected_epoch"] -= 1
            (run / name).write_text(json.dumps(r))
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    del state["format"]
    for h in state.get("history", []):
        h["epoch"] -= 1
    if "epoch" in state.get("best", {}):
        state["best"]["epoch"] -= 1
    torch.save(state, run / "checkpoint.pt")
    for name in ("best.pt", "last.pt"):
        if (run / name).is_file():
            model = torch.load(run / name, weights_only=True)
            del model["format"]
            model["epoch"] -= 1
            torch.save(model, run / name)


def test_epochs_count_from_one_in_every_file_and_older_runs_read_the_same(tmp_path, capsys):
    from pcdarts.runs.formats import FILE_FORMAT, read_epoch_log, read_result

    s, t = tmp_path / "s", tmp_path / "t"
    assert main(["search", "--dataset", "synthetic", "--out", str(s), *QUARTER_SEARCH]) == 0
    assert main(["train", "--genotype", "DARTS_V2", "--dataset", "synthetic", "--out", str(t), *QUARTER_TRAIN]) == 0
    said = capsys.readouterr().out
    result = json.loads((t / "result.json").read_text())
    assert result["format"] == FILE_FORMAT == 2 and 1 <= result["selected_epoch"] <= result["epochs"] == 2
    assert f"model from epoch {result['selected_epoch']} " in said  # the console and the file agree
    assert torch.load(t / "best.pt", weights_only=True)["epoch"] == result["selected_epoch"]
    for run in (s, t):
        assert [m["epoch"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())] == [1, 2]
    assert [h["epoch"] for h in map(json.loads, (s / "arch_history.jsonl").read_text().splitlines())] == [1, 2]

    # a run written before format 2 (epochs from 0 in files) reads, plots, resumes and extends the same
    _to_format_1(s)
    _to_format_1(t)
    assert [m["epoch"] for m in read_epoch_log(t / "metrics.jsonl")] == [1, 2]
    assert read_result(t / "result.json")["selected_epoch"] == result["selected_epoch"]
    assert main(["plot", "--run", str(s), "--out", str(tmp_path / "p"), "--epochs", "1", "2"]) == 0
    assert main(["report", str(t)]) == 0
    assert main(["search", "--resume", "--out", str(s), "--epochs", "3", "--extend", "--no-progress"]) == 0
    assert main(["train", "--resume", "--out", str(t), "--epochs", "3", "--extend", "--no-progress"]) == 0
    for run in (s, t):
        assert [m["epoch"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())] == [1, 2, 3]
    assert [h["epoch"] for h in map(json.loads, (s / "arch_history.jsonl").read_text().splitlines())] == [1, 2, 3]
    after = json.loads((t / "result.json").read_text())
    assert after["format"] == 2 and 1 <= after["selected_epoch"] <= 3
    assert after["extended_from"]["selected_epoch"] == result["selected_epoch"]
    shipped = torch.load(t / "best.pt", weights_only=True)  # the old epoch's or a new one's: counted from 1
    assert shipped["format"] == 2 and shipped["epoch"] == after["selected_epoch"]


def test_old_format_records_are_read_from_one_once_and_nothing_else_is_touched(tmp_path):
    from pcdarts.runs.formats import epochs_from_one, upgrade_epochs, upgrade_model_state
    from pcdarts.runs.metrics import MetricsLog

    assert epochs_from_one([{"epoch": 0}, {"epoch": 1}, "x"]) == [{"epoch": 1}, {"epoch": 2}, "x"]
    assert epochs_from_one([{"epoch": False}, {"epoch": 1}]) == [{"epoch": False}, {"epoch": 1}]  # no int 0
    old = {"selected_epoch": 0, "early_stop": {"epoch": 3}, "best": {"epoch": 2}, "history": [{"epoch": 0}]}
    new = upgrade_epochs(old)
    assert new == {"selected_epoch": 1, "early_stop": {"epoch": 4}, "best": {"epoch": 3}, "history": [{"epoch": 1}],
                   "format": 2}  # fmt: skip
    assert upgrade_epochs(new) is new and upgrade_epochs({"format": "2", "selected_epoch": 0})["selected_epoch"] == 0
    assert upgrade_model_state({"epoch": 4}) == {"epoch": 5, "format": 2}
    assert upgrade_model_state({"epoch": 4, "format": 2})["epoch"] == 4

    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"epoch": e, "loss": e}) + "\n" for e in (0, 1, 2)))
    MetricsLog(log, resume_epoch=2, tensorboard=False, old_format=True).close()  # 2 epochs done, 0-based log
    assert [json.loads(x)["epoch"] for x in log.read_text().splitlines()] == [1, 2]
    MetricsLog(log, resume_epoch=2, tensorboard=False, old_format=True).close()  # killed before a new checkpoint
    assert [json.loads(x)["epoch"] for x in log.read_text().splitlines()] == [1, 2]  # not shifted twice
    log.write_text("".join(json.dumps({"epoch": e}) + "\n" for e in (False, 1, 2, 3)))  # a current log
    MetricsLog(log, resume_epoch=2, tensorboard=False).close()
    assert [json.loads(x)["epoch"] for x in log.read_text().splitlines()] == [False, 1, 2]


def test_a_selection_made_before_ties_were_counted_says_so():
    from pcdarts.runs.formats import ties_text

    assert ties_text({"ties": 3}) == "3 decisions were ties, broken by the magnitude rule"
    assert ties_text({}) == ties_text({"ties": None}) == "ties not counted (a selection made before they were)"
