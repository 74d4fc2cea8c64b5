"""experiments.units: units held elsewhere or waiting for the budget are taken up again."""

from pcdarts.experiments.units import run_units
from pcdarts.runs.rundir import RunBusy


def test_units_held_by_another_process_are_taken_up_when_free(tmp_path):
    order = []
    calls = {"busy": 0}

    def busy_once():
        calls["busy"] += 1
        if calls["busy"] == 1:
            raise RunBusy("held elsewhere")
        return {"unit": "b"}

    units = [("a", lambda: {"unit": "a"}), ("b", busy_once), ("c", lambda: {"unit": "c"})]
    run_units(units, lambda i, cell: order.append((i, cell["unit"])), poll_seconds=0)
    assert order == [(0, "a"), (2, "c"), (1, "b")]


def test_units_waiting_for_the_budget_are_retried_after_progress_and_returned_when_nothing_else_is_left(monkeypatch):
    import pcdarts.experiments.study as study_mod
    from pcdarts.experiments.units import BudgetPending

    sleeps = []
    monkeypatch.setattr(study_mod.time, "sleep", sleeps.append)

    known, order, calls = {"budget": False}, [], {"b": 0}

    def needs_budget():
        if not known["budget"]:
            raise BudgetPending("waits")
        return {"unit": "a"}

    def busy_once():
        calls["b"] += 1
        if calls["b"] == 1:
            raise RunBusy("held elsewhere")
        return {"unit": "b"}

    def record(i, cell):
        order.append((i, cell["unit"]))

    def chooses():  # the calibration finishes while this unit runs
        known["budget"] = True
        return {"unit": "c"}

    assert run_units([("a", needs_budget), ("c", chooses)], record, poll_seconds=7) == []
    assert order == [(1, "c"), (0, "a")] and sleeps == []  # taken up again at once after progress
    known["budget"], order[:] = False, []
    assert run_units([("a", needs_budget), ("b", busy_once)], record, poll_seconds=7) == [0]
    assert order == [(1, "b")] and sleeps == [7]  # waited once for the busy unit, then returned the waiting one
