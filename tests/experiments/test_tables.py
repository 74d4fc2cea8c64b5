"""experiments.tables: the time each part of a study took, the comparisons and the cells as markdown."""


def test_time_by_part_counts_each_shared_run_once():
    from pcdarts.experiments.tables import format_times, time_by_part

    shared = {"kind": "searched", "seed": 0, "search_run": "search/s0", "search_seconds": 100.0}
    cells = [
        {**shared, "arm": "cap2", "search_seconds": 90.0, "train_run": "train/x", "train_seconds": 50.0},
        {**shared, "arm": "pcdarts", "train_run": "train/x", "train_seconds": 50.0},  # same cell: one training
        {
            **shared,
            "arm": "pt",
            "search_seconds": 130.0,
            "select_seconds": 30.0,
            "selection": "pt-t0.2",
            "train_run": "train/y",
            "train_seconds": 60.0,
        },  # fmt: skip
        {"arm": "random", "kind": "random", "seed": 0, "train_run": "train/r0", "train_seconds": 40.0},
    ]
    fidelity = {
        "rows": [{"train_run": "train/r0", "train_seconds": 40.0}, {"train_run": "train/r1", "train_seconds": 10.0}]
    }
    parts = {p["part"]: (p["runs"], p["seconds"]) for p in time_by_part({"cells": cells}, fidelity)}
    assert parts == {
        "calibration trainings": (2, 50.0),  # the random arm's training is the calibration's
        "searches": (1, 100.0),  # three arms, one search; DARTS-PT's selection time taken out
        "selections (DARTS-PT)": (1, 30.0),
        "trainings of searched cells": (2, 110.0),
    }
    table = format_times(time_by_part({"cells": cells}, fidelity))
    assert "| all | 6 | 0.1 | not recorded |" in table  # these runs kept no CPU time


def test_time_by_part_sums_cpu_time_where_every_run_kept_it():
    from pcdarts.experiments.tables import format_times, time_by_part

    search = {"kind": "searched", "seed": 0, "search_run": "search/s0", "search_seconds": 3600.0}
    cells = [
        {**search, "arm": "cap2", "search_cpu_seconds": 3000.0, "train_run": "t/x", "train_seconds": 1800.0,
         "train_cpu_seconds": 1700.0},
        {**search, "arm": "pt", "search_seconds": 7200.0, "search_cpu_seconds": 6000.0, "select_seconds": 3600.0,
         "select_cpu_seconds": 3000.0, "selection": "pt", "train_run": "t/y", "train_seconds": 1800.0,
         "train_cpu_seconds": 1600.0},
        {"arm": "random", "kind": "random", "seed": 0, "train_run": "t/r0", "train_seconds": 1800.0},
    ]  # fmt: skip
    fidelity = {"rows": [{"train_run": "t/r0", "train_seconds": 1800.0}]}  # a calibration run before CPU was kept
    parts = {p["part"]: (p["seconds"], p["cpu_seconds"]) for p in time_by_part({"cells": cells}, fidelity)}
    assert parts == {
        "calibration trainings": (1800.0, None),
        "searches": (3600.0, 3000.0),  # the PT arm's total less its selection
        "selections (DARTS-PT)": (3600.0, 3000.0),
        "trainings of searched cells": (3600.0, 3300.0),
    }
    table = format_times(time_by_part({"cells": cells}, fidelity))
    assert "| calibration trainings | 1 | 0.5 | not recorded |" in table and "| searches | 1 | 1.0 | 0.8 |" in table
    assert "| all | 5 | 3.5 | 2.6 (recorded parts) |" in table
    assert {p["part"] for p in time_by_part({"cells": cells})} == {"searches", "selections (DARTS-PT)", "trainings"}
    # the only arm read an early epoch of a search that ran longer: the search counts as it ran
    early = [{**c, "search_seconds": 600.0, "search_run_seconds": 3600.0, "search_run_cpu_seconds": 3400.0}
             for c in cells if c["arm"] == "cap2"]  # fmt: skip
    searches = time_by_part({"cells": early})[0]
    assert searches == {"part": "searches", "runs": 1, "seconds": 3600.0, "cpu_seconds": 3400.0}


def test_comparisons_put_the_primary_first_and_mark_the_others_secondary():
    from pcdarts.experiments.tables import format_cells, format_comparisons

    comp = {"n": 6, "n_random": 12, "margin": 0.004, "effect_sd": 0.8, "p_value": 0.12}
    study = {"primary": "cap2", "comparisons": [{**comp, "arm": "pcdarts"}, {**comp, "arm": "cap2", "p_value": 0.03}]}
    rows = format_comparisons(study).splitlines()[2:]
    assert rows[0].startswith("| cap2 | **primary** | 6 | 12 | +0.40 points | +0.80 | 0.030 |")
    assert rows[1].startswith("| pcdarts | secondary |")
    cell = {"arm": "cap2", "seed": 3, "test_accuracy": 0.9, "val_accuracy": None, "params": 12345,
            "param_free_normal": 2, "param_free_reduce": 1, "budget_epochs": 16,
            "genotype": {"normal": [["skip_connect", 0]], "reduce": [["max_pool_3x3", 1]]}}  # fmt: skip
    line = format_cells({"cells": [cell]}).splitlines()[2]
    assert line == "| cap2 | 3 | 90.00 % | - | 12,345 | 2 / 1 | 16 | skip_connect(0) | max_pool_3x3(1) |"
