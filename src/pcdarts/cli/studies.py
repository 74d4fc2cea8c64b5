"""Commands over many runs or a finished one: study, fidelity, select, report."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RunError
from ..experiments.fidelity import study_budget
from ..files import read_run_json
from .commands import _minutes


def cmd_study(ns: argparse.Namespace) -> int:
    from ..experiments.protocols import preset_file, study_values
    from ..experiments.stats import primary_verdict
    from ..experiments.study import Arm, StudyConfig, run_study
    from ..experiments.tables import format_table, verdict
    from ..viz.studies import plot_study

    if ns.status:
        from ..experiments.status import format_status, study_status

        print(format_status(study_status(ns.out)))
        return 0
    values: dict[str, Any] = {}
    calibrated = False
    if ns.preset is not None and ns.config is not None:
        raise ConfigError("give --config FILE or the old --preset NAME, not both")
    if ns.preset is not None or ns.config is not None:
        values = study_values(ns.config or preset_file(ns.preset, "study"))
        calibrated = values.pop("epochs_from_calibration", False)
    for key in ("dataset", "data", "searches", "random_cells", "train_seed", "primary", "rule", "retrain_random",
                "oneshot_arm"):  # fmt: skip
        if getattr(ns, key) is not None:
            values[key] = getattr(ns, key)
    if ns.arm:
        values["arms"] = [Arm.parse(a) for a in ns.arm]
    for key, items in (("search", ns.search_set), ("train", ns.train_set)):
        for item in items:
            arm = Arm.parse(f"x:{item}")
            values.setdefault(key, {}).update(arm.overrides)
    values["arms"] = tuple(values.get("arms", (Arm("pcdarts"),)))
    values, later = study_budget(values, calibrated=calibrated, budget_from=ns.budget_from,
                                 name=f"the {ns.preset or ns.config} protocol")  # fmt: skip
    budget = values.get("train", {}).get("epochs") if ns.budget_from is not None and later is None else None
    cfg = StudyConfig(**values)
    if ns.print_config:
        print(json.dumps(_study_plan(cfg, ns, budget), indent=2))
        return 0
    summary = run_study(cfg, ns.out, progress=not ns.no_progress, threads=ns.threads, budget=later)
    if "waiting_for_budget" in summary:
        print(
            f"the calibration in {ns.budget_from} has not chosen the training budget yet: the searches and "
            f"selections are done and the {len(summary['waiting_for_budget'])} cells' trainings wait for it "
            "(no study.json yet); run this command again once the calibration is finished"
        )
        return 0
    png = plot_study(summary, Path(ns.out) / "study.png")
    print(format_table(summary["arms"]))
    print(primary_verdict(summary) or verdict(summary["arms"]))
    print(f"study.json and {png.name} in {ns.out}; `pcdarts report {ns.out}` draws the report")
    return 0


def _study_plan(cfg: Any, ns: argparse.Namespace, budget: int | None) -> dict[str, Any]:
    """What ``pcdarts study`` would run, resolved: nothing is written."""

    from ..experiments.study import Study

    study = Study(cfg, ns.out, progress=False, threads=ns.threads)  # threads applied as a run applies them
    plan: dict[str, Any] = {"study": cfg.to_dict(), "arms": {}}
    for arm in cfg.arms:
        search, select = asdict(study.search_config(arm, 0)), study.select_config(arm)
        search["seed"] = f"0..{cfg.searches - 1}" if cfg.searches > 1 else 0
        plan["arms"][arm.name] = {"search": search, "select": None if select is None else asdict(select)}
    if cfg.random_cells:
        study.op_space()  # the check a run makes: one op space for the random cells
    train = asdict(study.train_cfg)
    if ns.budget_from is not None and budget is None:
        train["epochs"] = f"not chosen yet: the calibration in {ns.budget_from} is not finished"
    plan["train"] = train
    plan["units"] = [name for name, _ in study.plan()]
    return plan


def cmd_select(ns: argparse.Namespace) -> int:
    from ..nas.genotype import Genotype, param_free_count
    from ..runs.formats import ties_text
    from ..runs.select import SelectConfig, run_select, select_folder

    cfg = SelectConfig(method=ns.method, tune_epochs=ns.tune_epochs, score_batches=ns.score_batches, seed=ns.seed,
                       device=ns.device, threads=ns.threads)  # fmt: skip
    result = run_select(ns.run, ns.out, cfg, progress=not ns.no_progress)
    if result.get("stopped"):
        print(
            f"stopped after round {result['round']} of {result['rounds']}; the same command continues", file=sys.stderr
        )
        return 0
    if ns.json:
        print(json.dumps(result))
        return 0
    g, old = Genotype.from_dict(result["genotype"]), Genotype.from_dict(result["magnitude_genotype"])
    out = ns.out or select_folder(ns.run, cfg)
    print(
        f"perturbation-based selection ({result['label']}) in {_minutes(result['seconds'])}; "
        f"{param_free_count(g.normal)} of 8 normal-cell ops are parameter-free (largest alpha: "
        f"{param_free_count(old.normal)}); {ties_text(result)}\n"
        f"{g.describe()}\n"
        f"files: {out}/ (genotype.json, decisions.json, select_result.json, environment.json)\n"
        f"next: pcdarts train --genotype {out}/genotype.json --dataset {_search_dataset(ns.run)} --out {out}-train"
    )
    return 0


def _search_dataset(run: str) -> str:
    try:
        return str(read_run_json(Path(run) / "config.json")["dataset"])
    except (RunError, KeyError, TypeError):
        return "DATASET"


def cmd_fidelity(ns: argparse.Namespace) -> int:
    from ..experiments.fidelity import FidelityConfig, run_fidelity
    from ..experiments.protocols import preset_file, read_protocol
    from ..experiments.study import Arm
    from ..experiments.tables import format_fidelity
    from ..viz.studies import plot_fidelity

    values: dict[str, Any] = {}
    if ns.preset is not None and ns.config is not None:
        raise ConfigError("give --config FILE or the old --preset NAME, not both")
    if ns.preset is not None or ns.config is not None:
        values = read_protocol(ns.config or preset_file(ns.preset, "calibration"), "calibration")
        if isinstance(values.get("budgets"), list):
            values["budgets"] = tuple(values["budgets"])
    for key in ("dataset", "data", "cells", "seed_cells", "seed_budget", "train_seed", "cell"):
        if getattr(ns, key) is not None:
            values[key] = getattr(ns, key)
    if ns.budgets is not None:
        try:
            values["budgets"] = tuple(int(b) for b in ns.budgets.split(",") if b.strip())
        except ValueError:
            raise ConfigError(f"--budgets wants epoch counts like 8,16,32, got {ns.budgets!r}") from None
    for item in ns.train_set:
        values.setdefault("train", {}).update(Arm.parse(f"x:{item}").overrides)
    cfg = FidelityConfig(**values)
    summary = run_fidelity(cfg, ns.out, progress=not ns.no_progress, threads=ns.threads, summary_only=ns.summary_only)
    png = plot_fidelity(summary, Path(ns.out) / "fidelity.png")
    print(format_fidelity(summary))
    print(f"fidelity.json and {png.name} in {ns.out} ({summary['units_done']} of {summary['units']} trainings)")
    return 0


def cmd_report(ns: argparse.Namespace) -> int:
    from ..viz.report import build_report

    print(f"wrote {build_report(ns.run_dir, ns.out, overwrite=ns.overwrite)}")
    return 0
