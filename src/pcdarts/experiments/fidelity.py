"""``pcdarts fidelity``: how long must cells train before their ranking means something on my data?

A study compares cells by the accuracy of a short training. That comparison is only worth its cost if
the short training ranks cells as a long one would: across 214 random DARTS cells on CIFAR-10, Kendall
tau between accuracy after 20 and after 600 epochs is about 0.24 (Yang et al., ICLR 2020). This command
measures that on the user's data: the same random cells trained at several epoch budgets (each with its
learning-rate schedule annealed to its own length), plus a second training seed for some cells, and
reports for each budget Kendall tau against the longest budget (with a bootstrap 90 % interval over
cells), the seed-to-seed tau and the spread of the cells.

Everything is read on validation data: the calibration never reads the test split. Its trainings live
in the same folder layout as a study's (``train/g<cell>-e<epochs>-t<seed>``), so a study run in the
same folder with one of the budgets takes those trainings as its random arm without training them again.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RunError
from ..files import atomic_write_json, read_run_json
from ..nas.genotype import random_genotype
from ..runs.config import TrainConfig, resolve_config
from ..runs.formats import FILE_FORMAT, without_added
from .stats import bootstrap_tau, kendall_tau
from .study import random_cell
from .study_config import StudyConfig
from .units import (
    briefly_locked,
    check_pinned,
    number,
    run_units,
    train_cell,
    train_folder,
    with_listed,
    with_threads,
)


@dataclass(frozen=True)
class FidelityConfig:
    dataset: str = "fashion-mnist"
    data: str | None = None
    cells: int = 12  # random cells (seeds 0..N-1, the same cells as a study's random arm)
    budgets: tuple[int, ...] = (8, 16, 32)  # training epochs; the longest is the reference ranking
    seed_cells: int = 4  # cells 0..M-1 trained again with a second training seed
    seed_budget: int = 0  # the budget of the second-seed trainings (0: the longest)
    train_seed: int = 0  # the first training seed (the study's); the second is train_seed + 1
    train: dict[str, Any] = field(default_factory=dict)  # the training protocol (the study's); epochs come from budgets
    cell: str = "darts"  # the cell space the random cells come from: darts or nasbench201 (uniform, none included)

    def __post_init__(self) -> None:
        object.__setattr__(self, "budgets", tuple(sorted({int(b) for b in self.budgets})))
        if len(self.budgets) < 2 or self.budgets[0] < 1:
            raise ConfigError(f"budgets must be at least two epoch counts >= 1, got {list(self.budgets)}")
        if not 3 <= self.cells <= 10_000:
            raise ConfigError(f"a ranking needs between 3 and 10,000 cells, got {self.cells}")
        if len(self.budgets) > 20:
            raise ConfigError(f"at most 20 budgets, got {len(self.budgets)}")
        if not 0 <= self.seed_cells <= self.cells:
            raise ConfigError(f"seed cells must be between 0 and the {self.cells} cells, got {self.seed_cells}")
        if self.seed_cells and self.seed_budget not in (0, *self.budgets):
            raise ConfigError(f"seed budget must be one of the budgets {list(self.budgets)}, got {self.seed_budget}")
        if "epochs" in self.train or "seed" in self.train:
            raise ConfigError("the training settings take epochs from --budgets and the seed from --train-seed")
        own = sorted(set(self.train) & {"genotype", "dataset", "data"})
        if own:  # set by the calibration itself: a value here would be recorded but not used
            raise ConfigError(
                f"--train-set {own[0]}=... is not a training setting of a calibration: it trains random cells of "
                "--cell on --dataset / --data; drop it"
            )
        if self.cell not in ("darts", "nasbench201"):
            raise ConfigError(f"cell must be darts or nasbench201, got {self.cell!r}")

    @property
    def second_seed_budget(self) -> int:
        return self.seed_budget or self.budgets[-1]

    def train_config(self, epochs: int, seed: int) -> TrainConfig:
        values = {**self.train, "epochs": epochs, "seed": seed, "data": self.data}
        try:
            return resolve_config(TrainConfig, self.dataset, values, cell=self.cell)
        except (TypeError, ValueError) as exc:
            raise RunError(f"fidelity training settings: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["budgets"] = list(self.budgets)
        return without_added(d, "calibration")

    def random_cell(self, seed: int) -> Any:
        """Random cell ``seed`` of the calibration's cell space (the same cell a study's random arm draws)."""
        if self.cell == "nasbench201":
            from ..nas.nb201 import NB201_OPS

            return random_cell(self.cell, seed, NB201_OPS)
        return random_genotype(seed)

    def study_train(self, budget: int) -> dict[str, Any]:
        """The ``train`` settings a study needs to reuse this calibration's trainings at ``budget``."""
        return {**self.train, "epochs": budget}


def summarise_fidelity(cfg: FidelityConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per budget: tau against the longest budget (90 % bootstrap interval) and the cells' spread;
    the seed-to-seed tau; the cheapest budget whose tau reaches 0.6 (a study's choice rule)."""
    first = {(r["cell"], r["budget_epochs"]): r["val_accuracy"] for r in rows if r["train_seed"] == cfg.train_seed}
    longest = cfg.budgets[-1]
    budgets = []
    for b in cfg.budgets:
        cells = sorted(c for c, bb in first if bb == b and (c, longest) in first)
        xs, ys = [first[c, b] for c in cells], [first[c, longest] for c in cells]
        accs = [v for (c, bb), v in first.items() if bb == b]
        tau = kendall_tau(xs, ys) if len(cells) >= 3 else math.nan
        lo, hi = bootstrap_tau(xs, ys) if len(cells) >= 3 else (math.nan, math.nan)
        budgets.append(
            {
                "epochs": b,
                "cells": len(accs),
                "paired_with_longest": len(cells),
                "tau_vs_longest": tau,
                "tau_90ci": [lo, hi],
                "val_mean": statistics.fmean(accs) if accs else math.nan,
                "val_std": statistics.stdev(accs) if len(accs) > 1 else math.nan,
                "val_min": min(accs, default=math.nan),
                "val_max": max(accs, default=math.nan),
            }
        )
    sb = cfg.second_seed_budget
    second = {r["cell"]: r["val_accuracy"] for r in rows if r["train_seed"] != cfg.train_seed}
    pairs = sorted(c for c in second if (c, sb) in first)
    xs, ys = [first[c, sb] for c in pairs], [second[c] for c in pairs]
    seed_tau = kendall_tau(xs, ys) if len(pairs) >= 3 else math.nan
    seed_ci = bootstrap_tau(xs, ys) if len(pairs) >= 3 else (math.nan, math.nan)
    diffs = [abs(a - b) for a, b in zip(xs, ys)]
    complete = all(b["cells"] == cfg.cells for b in budgets) and len(pairs) == cfg.seed_cells
    chosen = next((b["epochs"] for b in budgets if b["tau_vs_longest"] >= 0.6), longest) if complete else None
    return {
        "budgets": budgets,
        "seed": {
            "budget_epochs": sb,
            "cells": len(pairs),
            "tau": seed_tau,
            "tau_90ci": list(seed_ci),
            "mean_abs_diff": statistics.fmean(diffs) if diffs else math.nan,
        },
        "complete": complete,
        "chosen_budget": chosen,
        "rule": "the cheapest budget whose Kendall tau against the longest is >= 0.6; if none, the longest",
    }


# ---------------------------------------------------------------- running
def _row(cell: int, budget: int, seed: int, trained: dict[str, Any]) -> dict[str, Any]:
    g = trained["genotype"]
    from ..nas.genotype import Genotype, param_free_count

    genotype = Genotype.from_dict(g)
    return {
        "cell": cell,
        "budget_epochs": budget,
        "train_seed": seed,
        "val_accuracy": trained["val_accuracy"],
        "selected_epoch": trained["selected_epoch"],
        "params": trained["params"],
        "param_free_normal": param_free_count(genotype.normal),
        "param_free_reduce": param_free_count(genotype.reduce),
        "train_seconds": trained["seconds"],
        "train_cpu_seconds": trained.get("cpu_seconds"),
        "train_run": trained["run"],
        "revision": trained.get("revision"),
    }


class Fidelity:
    """The plan of a calibration and its progress in ``out``; ``run()`` does what is left."""

    def __init__(self, cfg: FidelityConfig, out: str | Path, *, progress: bool = True, threads: int = 0):
        self.cfg, self.out, self.progress, self.threads = cfg, Path(out), progress, threads
        for b in cfg.budgets:  # every training's settings checked before any work
            tcfg = cfg.train_config(b, cfg.train_seed)
            if tcfg.val_fraction <= 0 and not tcfg.holdout_images:
                raise RunError(
                    "a calibration ranks cells on validation data: set holdout_images (a fixed hold-out) or "
                    "val_fraction > 0 in the training"
                )
        self.rows: list[dict[str, Any]] = []

    def _unit(self, cell: int, budget: int, seed: int) -> dict[str, Any]:
        tcfg = with_threads(self.cfg.train_config(budget, seed), self.threads)
        trained = train_cell(self.out, tcfg, self.cfg.random_cell(cell), progress=self.progress, read_test=False)
        return _row(cell, budget, seed, trained)

    def keys(self) -> list[tuple[int, int, int]]:
        """(cell, budget, training seed) cell by cell (every budget, then its second seed), so a partial
        calibration has whole cells."""
        cfg, keys = self.cfg, []
        for c in range(cfg.cells):
            keys += [(c, b, cfg.train_seed) for b in cfg.budgets]
            if c < cfg.seed_cells:
                keys.append((c, cfg.second_seed_budget, cfg.train_seed + 1))
        return keys

    def plan(self) -> list[tuple[str, Any]]:
        first = self.cfg.train_seed
        return [
            (f"cell {c}, {b} epochs" + (f", seed {s}" if s != first else ""), lambda c=c, b=b, s=s: self._unit(c, b, s))
            for c, b, s in self.keys()
        ]

    def summarise_finished(self) -> dict[str, Any]:
        """fidelity.json from the trainings finished so far, training nothing: a look at a calibration that
        other processes may still be running (its budget is chosen only once every training is done)."""
        if not (self.out / "fidelity_config.json").is_file():
            raise RunError(f"{self.out} holds no calibration: run pcdarts fidelity there without --summary-only first")
        check_pinned(self.out, "fidelity_config.json", self.cfg.to_dict(), "calibration")
        keys = self.keys()
        done = [
            (c, b, s)
            for c, b, s in keys
            if (train_folder(self.out, self.cfg.train_config(b, s), self.cfg.random_cell(c)) / "result.json").is_file()
        ]
        self.rows = [self._unit(c, b, s) for c, b, s in done]  # finished: each is read back, not trained
        summary = self.write()  # with the rows a worker listed meanwhile: a complete summary stays complete
        summary["units_done"], summary["units"] = len(summary["rows"]), len(keys)
        return summary

    def run(self) -> dict[str, Any]:
        check_pinned(self.out, "fidelity_config.json", self.cfg.to_dict(), "calibration")
        units = self.plan()
        results: dict[int, dict[str, Any]] = {}

        def record(i: int, row: dict[str, Any]) -> None:
            results[i] = row
            self.rows = [results[j] for j in sorted(results)]
            self.write()

        run_units(units, record)
        summary = self.write()
        summary["units_done"] = len(results)
        summary["units"] = len(units)
        return summary

    def _kept(self, r: dict[str, Any]) -> bool:
        """A row another process listed in fidelity.json, well formed, whose training is still in the folder."""
        return (
            all(type(r.get(k)) is int for k in ("cell", "budget_epochs", "train_seed"))
            and all(number(r.get(k)) for k in ("val_accuracy", "params", "train_seconds"))
            and isinstance(r.get("train_run"), str)
            and (self.out / r["train_run"] / "result.json").is_file()
        )

    def write(self) -> dict[str, Any]:
        """fidelity.json from the finished trainings, this process's and those the others sharing the folder
        listed (:func:`~.units.with_listed`), so it is complete, with its budget, once every training is."""
        order = {key: i for i, key in enumerate(self.keys())}
        with briefly_locked(self.out):
            rows = with_listed(
                self.out / "fidelity.json",
                self.cfg.to_dict(),
                "rows",
                self.rows,
                order,
                lambda r: (r["cell"], r["budget_epochs"], r["train_seed"]),
                self._kept,
            )
            summary = {"format": FILE_FORMAT, "config": self.cfg.to_dict(), "rows": rows}  # epochs from 1
            summary.update(summarise_fidelity(self.cfg, rows))
            atomic_write_json(self.out / "fidelity.json", summary)
        return summary


def run_fidelity(
    cfg: FidelityConfig, out: str | Path, *, progress: bool = True, threads: int = 0, summary_only: bool = False
) -> dict[str, Any]:
    """Run (or continue) a calibration; returns the summary also written to ``out/fidelity.json``.

    ``summary_only``: write the summary of the trainings finished so far and train nothing.
    """
    fid = Fidelity(cfg, out, progress=progress, threads=threads)
    return fid.summarise_finished() if summary_only else fid.run()


def load_fidelity(path: str | Path) -> dict[str, Any]:

    path = Path(path)
    f = path / "fidelity.json" if path.is_dir() else path
    if not f.is_file():
        raise RunError(f"no fidelity.json in {path}: run `pcdarts fidelity --out {path}` first")
    try:
        data = read_run_json(f)  # bounded: size, encoding, nesting
        data["budgets"], data["rows"], data["config"]  # noqa: B018 - the keys every reader needs
    except (RunError, KeyError, TypeError):
        raise RunError(f"{f} is not a readable fidelity.json: run the calibration again to rewrite it") from None
    return data


def calibrated_budget(folder: str | Path, train: dict[str, Any], dataset: str) -> int | None:
    """The training epochs the calibration in ``folder`` chose for a study with these ``train`` settings, None
    while it is unfinished; refused when the calibration ran another protocol (a study may only take the budget
    of a calibration of its own training)."""
    fid = load_fidelity(folder)
    mine = {k: v for k, v in train.items() if k != "epochs"}
    if (
        not isinstance(fid["config"], dict)
        or fid["config"].get("train") != mine
        or fid["config"].get("dataset") != dataset
    ):
        raise ConfigError(
            f"the calibration in {folder} used other training settings than this study: give the study the "
            "calibration's --train-set values"
        )
    return None if fid.get("chosen_budget") is None else int(fid["chosen_budget"])


def study_budget(
    values: dict[str, Any], *, calibrated: bool, budget_from: str | Path | None, name: str = "the protocol"
) -> tuple[dict[str, Any], Callable[[], int | None] | None]:
    """A study's training epochs from its calibration: ``values`` (a StudyConfig's keyword arguments) with the
    epochs the calibration in ``budget_from`` chose, or, while it is unfinished, a function that reads them
    again before each training. A protocol that takes its epochs from a calibration (``calibrated``) needs
    ``budget_from`` unless its training epochs are given."""
    train = values.get("train", {})
    if budget_from is None:
        if calibrated and train.get("epochs") is None:
            raise ConfigError(
                f"{name} takes its training epochs from its calibration: add --budget-from DIR (the folder of "
                "its `pcdarts fidelity` run), or choose them with --train-set epochs=N"
            )
        return values, None
    dataset = values.get("dataset", StudyConfig.dataset)
    budget = calibrated_budget(budget_from, train, dataset)
    if budget is not None:
        return {**values, "train": {**train, "epochs": budget}}, None
    return values, functools.partial(calibrated_budget, budget_from, train, dataset)
