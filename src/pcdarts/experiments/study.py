"""``pcdarts study``: does the search beat chance? Searched cells against random cells, trained identically.

The protocol (Li & Talwalkar 2019; Yang et al., ICLR 2020): for each search configuration ("arm")
S searches with different seeds; R cells sampled uniformly from the same space; every cell is
trained from scratch with one training configuration and seed, model selection on a validation
split carved from the train images, and the test split read once per cell, for its reported figure.

One study folder holds every sub-run, so running the same command again continues where it
stopped: finished sub-runs are read back, an interrupted one resumes from its checkpoint.
Arms whose search differs only in derivation-time remedies (the P-DARTS cap, DARTS+ early
stopping) share their searches and derive from the stored per-epoch history; cells that come
out identical share one training, as they would train identically anyway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RunError
from ..files import atomic_write_json, read_run_json
from ..nas.candidates import OpSpace, op_space
from ..nas.genotype import Genotype, none_count, param_free_count, random_genotype
from ..nas.remedies import select_from_history
from ..runs.config import SearchConfig
from ..runs.environment import revision
from ..runs.formats import FILE_FORMAT, read_epoch_log
from ..runs.search import run_search
from ..runs.select import SelectConfig, run_select, select_folder
from .stats import compare_with_random, summarise_arms
from .study_config import Arm, StudyConfig
from .units import (
    PENDING_PIN,
    BudgetPending,
    _cpu_sum,
    _digest,
    _without_epochs,
    briefly_locked,
    check_pinned,
    check_reused,
    number,
    run_revisions,
    run_units,
    train_cell,
    with_listed,
    with_threads,
)

log = logging.getLogger(__name__)


# Settings that only change how a genotype is read off a finished search: arms differing only in
# these share their search runs.
DERIVATION_ONLY = ("max_param_free", "max_param_free_reduce", "early_stop_param_free", "early_stop_stable")


def _search_identity(arm: Arm, seed: int) -> str:
    """Run-folder name of an arm's search: the arm's overrides that change the search itself, and the seed.

    The base settings are pinned by the study's own config file, so the name stays stable when the
    library gains new settings with neutral defaults.
    """
    changing = {
        k: v for k, v in sorted(arm.overrides.items()) if k not in DERIVATION_ONLY and not k.startswith("select")
    }
    return f"s{_digest(changing)}-seed{seed}"


class Study:
    """The plan of a study and its progress in ``out``; ``run()`` does what is left."""

    def __init__(
        self,
        cfg: StudyConfig,
        out: str | Path,
        *,
        progress: bool = True,
        threads: int = 0,
        budget: Callable[[], int | None] | None = None,
    ):
        """``budget``: where the training epochs will come from while a calibration is still choosing them
        (the chosen epochs, or None until then); the searches and selections run meanwhile."""
        self.cfg, self.out, self.progress = cfg, Path(out), progress
        self.threads = threads
        self.budget = budget
        self.train_cfg = with_threads(cfg.train_config(), threads)
        self.cells: list[dict[str, Any]] = []
        self._prepared: set[tuple[str, int]] = set()  # searched cells whose search (and selection) are done

    # ------------------------------------------------------------ bookkeeping
    def _check_folder(self, cfg: StudyConfig | None = None) -> None:
        """Pin the folder to the study's settings; a folder that a run waiting for its budget pinned to all
        but the training epochs must agree with those too."""
        cfg = cfg or self.cfg
        check_pinned(self.out, "study_config.json", cfg.to_dict(), "study")
        if (self.out / PENDING_PIN).is_file():
            check_pinned(self.out, PENDING_PIN, _without_epochs(cfg.to_dict()), "study")

    def _check_folder_pending(self) -> None:
        """Pin a study started before its budget is chosen to everything but the training epochs, so a run
        with other settings cannot add searches to its folder meanwhile."""
        check_pinned(self.out, PENDING_PIN, _without_epochs(self.cfg.to_dict()), "study")
        if (self.out / "study_config.json").is_file():
            theirs = read_run_json(self.out / "study_config.json")
            if not isinstance(theirs, dict) or _without_epochs(theirs) != _without_epochs(self.cfg.to_dict()):
                raise RunError(
                    f"{self.out} holds a study with other settings: run it with the same settings to continue, "
                    "or choose a new folder"
                )

    def search_config(self, arm: Arm, seed: int) -> SearchConfig:
        """An arm's search at ``seed`` as this study runs it (its thread count applied)."""
        return with_threads(self.cfg.search_config(arm, seed), self.threads)

    def select_config(self, arm: Arm) -> SelectConfig | None:
        """An arm's DARTS-PT selection as this study runs it, or None for an arm that derives by argmax."""
        return with_threads(self.cfg.select_config(arm), self.threads)

    def _search(self, arm: Arm, seed: int) -> tuple[Path, SearchConfig]:
        scfg = self.search_config(arm, seed)
        run = self.out / "search" / _search_identity(arm, seed)
        shared = replace(scfg, **{k: getattr(SearchConfig(), k) for k in DERIVATION_ONLY})
        if (run / "genotype.json").is_file():
            check_reused(run, shared)
        else:
            log.info("study: search for arm %s, seed %d -> %s", arm.name, seed, run)
            resume = (run / "checkpoint.pt").is_file()
            result = run_search(shared, run, resume=resume, overwrite=not resume, progress=self.progress)
            if result.get("stopped"):
                raise KeyboardInterrupt
        return run, scfg

    def _train(self, genotype: Genotype, *, seed_offset: int = 0) -> dict[str, Any]:
        self._need_budget()
        cfg = replace(self.train_cfg, seed=self.train_cfg.seed + seed_offset) if seed_offset else self.train_cfg
        return train_cell(self.out, cfg, genotype, progress=self.progress)

    def _need_budget(self) -> None:
        """Before any training: the calibrated budget, read again each time until it is chosen, then pinned."""
        if self.budget is None:
            return
        epochs = self.budget()
        if epochs is None:
            raise BudgetPending("waits for the training budget (the calibration is not finished)")
        cfg = replace(self.cfg, train={**self.cfg.train, "epochs": int(epochs)})
        train_cfg = with_threads(cfg.train_config(), self.threads)
        self._check_folder(cfg)  # pinned first: a pin that fails (or is busy) leaves the budget unread
        self.cfg, self.train_cfg, self.budget = cfg, train_cfg, None

    def _cell(
        self, arm: str, kind: str, seed: int, genotype: Genotype, trained: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        return {
            "arm": arm,
            "kind": kind,
            "seed": seed,
            "genotype": genotype.to_dict(),
            "test_accuracy": trained["test_accuracy"],
            "val_accuracy": trained.get("val_accuracy"),
            "params": trained["params"],
            "macs": trained["macs"],
            "train_seconds": trained["seconds"],
            "train_cpu_seconds": trained.get("cpu_seconds"),
            **_op_counts(genotype),
            **({"holdout_accuracy": trained.get("val_accuracy")} if trained.get("selected_by") == "holdout" else {}),
            "train_run": trained["run"],
            "budget_epochs": trained["epochs"],
            "train_seed": trained.get("train_seed", self.train_cfg.seed),
            "revision": trained.get("revision"),
            **({"earlier_revisions": trained["earlier_revisions"]} if "earlier_revisions" in trained else {}),
            **extra,
        }

    def _oneshot(self, arm: Arm, run: Path, scfg: SearchConfig) -> dict[str, Any]:
        """The one-shot arm's supernet scores every random cell (inherited weights): ``oneshot.json`` in its run."""
        if self.cfg.oneshot_arm != arm.name or not self.cfg.random_cells:
            return {}
        from .oneshot import oneshot_scores

        cell, space = self.cell_space()
        genotypes = [random_cell(cell, s, space.ops) for s in range(self.cfg.random_cells)]
        scores = oneshot_scores(run, scfg, genotypes, images=self.cfg.oneshot_images, progress=self.progress)
        return {"oneshot_run": str((run / "oneshot.json").relative_to(self.out)), "oneshot_seconds": scores["seconds"]}

    def _searched_cell(self, arm: Arm, seed: int) -> dict[str, Any]:
        if (arm.name, seed) in self._prepared:  # tried again while waiting: nothing to read back before the budget
            self._need_budget()
        run, scfg = self._search(arm, seed)
        history, bad = read_epoch_log(run / "arch_history.jsonl", count_bad=True)
        if bad or [h.get("epoch") for h in history] != list(range(1, len(history) + 1)):
            raise RunError(
                f"{run / 'arch_history.jsonl'} is damaged ({bad} unreadable lines, epochs not 1..n): delete {run} "
                "and run the study again to redo that search"
            )
        genotype, epoch, reason = select_from_history(
            history,
            warmup_epochs=scfg.warmup_epochs,
            max_param_free=scfg.max_param_free,
            max_param_free_reduce=scfg.max_param_free_reduce,
            early_stop_param_free=scfg.early_stop_param_free,
            early_stop_stable=scfg.early_stop_stable,
        )
        metrics = read_epoch_log(run / "metrics.jsonl")
        # The shared search as it ran (its result counts on across resumes; an epoch's own figure restarts when
        # a run resumes inside it): the time table's figure, and the time of an arm that read its last epoch.
        ran = read_run_json(run / "search_result.json") if (run / "search_result.json").is_file() else {}
        whole = {
            "search_run_seconds": ran.get("seconds", sum(m.get("epoch_seconds", 0.0) for m in metrics)),
            "search_run_cpu_seconds": ran.get("cpu_seconds") if "seconds" in ran else _cpu_sum(metrics),
        }
        if epoch >= len(metrics):
            seconds, cpu = whole["search_run_seconds"], whole["search_run_cpu_seconds"]
        else:  # an arm that stops early: the epochs it read
            seconds = sum(m.get("epoch_seconds", 0.0) for m in metrics if m.get("epoch", 0) <= epoch)
            cpu = _cpu_sum(m for m in metrics if m.get("epoch", 0) <= epoch)
        extra: dict[str, Any] = run_revisions(run, "search_")
        sel = self.select_config(arm)
        if sel is not None:  # DARTS-PT from the end of the shared search (the derivation remedies do not apply)
            select_dir = select_folder(run, sel)
            chosen = run_select(run, select_dir, sel, progress=self.progress)
            if chosen.get("stopped"):
                raise KeyboardInterrupt
            genotype, epoch = Genotype.from_dict(chosen["genotype"]), scfg.epochs
            seconds = whole["search_run_seconds"] + chosen["seconds"]
            cpu = _cpu_sum([], whole["search_run_cpu_seconds"], chosen.get("cpu_seconds"))
            extra |= {
                "selection": chosen["label"],
                "select_seconds": chosen["seconds"],
                "select_cpu_seconds": chosen.get("cpu_seconds"),
                **run_revisions(select_dir, "select_"),  # None for a selection made before it was kept
            }
        extra |= self._oneshot(arm, run, scfg)
        self._prepared.add((arm.name, seed))
        trained = self._train(genotype)
        return self._cell(
            arm.name,
            "searched",
            seed,
            genotype,
            trained,
            search_seconds=seconds,
            search_cpu_seconds=cpu,
            **whole,
            search_run=str(run.relative_to(self.out)),
            search_epoch=epoch,
            early_stop=reason,
            **extra,
        )

    def unit_keys(self) -> list[tuple[str, int]]:
        """Every unit as (arm, seed) in the order they run: round-robin over seeds so partial results cover
        every arm. ``random`` and ``random-retrain`` are the random cells and their second trainings."""
        keys: list[tuple[str, int]] = []
        for i in range(max(self.cfg.searches, self.cfg.random_cells)):
            if i < self.cfg.searches:
                keys += [(arm.name, i) for arm in self.cfg.arms]
            if i < self.cfg.random_cells:
                keys.append(("random", i))
            if i < self.cfg.retrain_random:
                keys.append(("random-retrain", i))
        return keys

    def plan(self) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
        """Work units in the order of :meth:`unit_keys`, each a name and the call that does it."""
        arms = {arm.name: arm for arm in self.cfg.arms}
        units: list[tuple[str, Callable[[], dict[str, Any]]]] = []
        for name, i in self.unit_keys():
            if name == "random":
                units.append((f"random seed {i}", lambda i=i: self._random_cell(i)))
            elif name == "random-retrain":
                units.append((f"random seed {i}, training seed +1", lambda i=i: self._random_cell(i, retrain=True)))
            else:
                units.append((f"{name} seed {i}", lambda arm=arms[name], i=i: self._searched_cell(arm, i)))
        return units

    def cell_space(self) -> tuple[str, OpSpace]:
        """The cell space (``darts`` or ``nasbench201``) and op space the random cells are drawn from."""
        return self.cfg.cell(), self.op_space()

    def op_space(self) -> OpSpace:
        """The op space of the study's searches, which its random cells are drawn from (one for all arms)."""
        spaces = {}
        for arm in self.cfg.arms:
            scfg = self.cfg.search_config(arm, 0)
            spaces[arm.name] = op_space(scfg.space, scfg.ops)
        if not spaces:  # random cells only: the base search settings name the space
            base = self.cfg.base_search_config()
            return op_space(base.space, base.ops)
        found = sorted({s.ops for s in spaces.values()})
        if len(found) > 1:
            listed = "; ".join(f"{name}: {', '.join(s.ops)}" for name, s in spaces.items())
            raise ConfigError(
                f"the arms search different op spaces ({listed}): random cells are drawn from one space, so give "
                "every arm the same space (or run one study per space)"
            )
        return next(iter(spaces.values()))

    def _random_cell(self, seed: int, *, retrain: bool = False) -> dict[str, Any]:
        self._need_budget()
        cell, space = self.cell_space()
        genotype = random_cell(cell, seed, space.ops)
        if retrain:  # the same cell, another training seed: how far one training's noise moves a cell
            trained = self._train(genotype, seed_offset=1)
            return self._cell("random-retrain", "retrain", seed, genotype, trained, search_seconds=0.0)
        return self._cell("random", "random", seed, genotype, self._train(genotype), search_seconds=0.0)

    # ------------------------------------------------------------ running
    def run(self) -> dict[str, Any]:
        """Do what is left.

        Units another process is running (a second ``pcdarts study`` on the same folder) are skipped
        and read back once that process has finished them. While the training budget is not chosen yet
        the searches and selections run, and the run ends with ``waiting_for_budget`` (no study.json yet).
        """
        for arm in self.cfg.arms:  # every arm's settings checked before the folder is pinned to them
            self.cfg.search_config(arm, 0)
            self.cfg.select_config(arm)
        if self.cfg.random_cells:  # random cells are drawn from the searches' one space
            self.cell_space()
        if self.budget is None:
            self._check_folder()
        else:  # study_config.json holds the epochs: written once they are known
            self._check_folder_pending()
        units = self.plan()
        results: dict[int, dict[str, Any]] = {}

        def record(i: int, cell: dict[str, Any]) -> None:
            results[i] = cell
            self.cells = [results[j] for j in sorted(results)]
            self.write()

        waiting = run_units([(name, unit) for name, unit in units], record)
        if self.budget is not None:  # no training could start: no study.json to write yet
            return {"waiting_for_budget": [units[i][0] for i in waiting], "units": len(units), "units_done": 0}
        summary = self.write(complete=len(results) == len(units))
        summary["units_done"] = len(results)
        return summary

    def _kept(self, c: dict[str, Any]) -> bool:
        """A cell another process listed in study.json, well formed, whose training (and search) is still here."""
        if not isinstance(c.get("arm"), str):
            return False
        kind = {"random": "random", "random-retrain": "retrain"}.get(c["arm"], "searched")
        return (
            type(c.get("seed")) is int
            and c.get("kind") == kind
            and all(number(c.get(k)) for k in ("test_accuracy", "params", "param_free_normal", "train_seconds"))
            and isinstance(c.get("train_run"), str)
            and (self.out / c["train_run"] / "result.json").is_file()
            and (
                kind != "searched"
                or (isinstance(c.get("search_run"), str) and (self.out / c["search_run"] / "genotype.json").is_file())
            )
        )

    def write(self, *, complete: bool = False) -> dict[str, Any]:
        """study.json: the settings, every finished cell, the arms' summary and their comparisons with the
        random cells. Processes sharing the folder each keep the cells the others listed (:func:`with_listed`),
        and study.json says complete once every planned unit is in it."""
        order = {key: i for i, key in enumerate(self.unit_keys())}
        with briefly_locked(self.out):
            cells = with_listed(
                self.out / "study.json",
                self.cfg.to_dict(),
                "cells",
                self.cells,
                order,
                lambda c: (c["arm"], c["seed"]),
                self._kept,
            )
            summary = {
                "format": FILE_FORMAT,  # search_epoch and every epoch counted from 1
                "config": self.cfg.to_dict(),
                "revision": revision(),
                "train_config": asdict(self.train_cfg),
                "complete": complete or len(cells) == len(order),
                "cells": cells,
                "arms": summarise_arms(cells),
                "primary": self.cfg.primary,
                "comparisons": [c for a in self.cfg.arms if (c := compare_with_random(cells, a.name)) is not None],
            }
            atomic_write_json(self.out / "study.json", summary)
        return summary


def random_cell(cell: str, seed: int, ops: tuple[str, ...]) -> Any:
    """Random cell ``seed`` of a cell space: the DARTS cell's (two inputs per node, no ``none``) or the
    NAS-Bench-201 cell's (uniform over every cell, ``none`` included)."""
    if cell == "nasbench201":
        from ..nas.nb201 import random_nb201

        return random_nb201(seed, ops)
    return random_genotype(seed, ops=ops)


def _op_counts(genotype: Any) -> dict[str, Any]:
    """Parameter-free ops per cell; a NAS-Bench-201 cell also its ``none`` edges and its space's name."""
    if getattr(genotype, "cell", "darts") != "darts":
        pairs = genotype.normal
        return {"cell": genotype.cell, "param_free_normal": param_free_count(pairs), "none_edges": none_count(pairs)}
    return {
        "param_free_normal": param_free_count(genotype.normal),
        "param_free_reduce": param_free_count(genotype.reduce),
    }


def load_study(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    f = path / "study.json" if path.is_dir() else path
    if not f.is_file():
        raise RunError(f"no study.json in {path}: run `pcdarts study --out {path}` first")
    try:
        data = read_run_json(f)  # bounded: size, encoding, nesting
        data["cells"], data["arms"]  # noqa: B018 - the two keys every reader needs
    except (RunError, KeyError, TypeError):
        raise RunError(f"{f} is not a readable study.json: restore it, or run the study again to rewrite it") from None
    return data


def run_study(
    cfg: StudyConfig,
    out: str | Path,
    *,
    progress: bool = True,
    threads: int = 0,
    budget: Callable[[], int | None] | None = None,
) -> dict[str, Any]:
    """Run (or continue) a study; returns the summary also written to ``out/study.json``.

    With ``budget`` (a calibration still running) see ``Study``: the summary may be ``waiting_for_budget``.
    """
    t0 = time.time()
    summary = Study(cfg, out, progress=progress, threads=threads, budget=budget).run()
    summary["seconds_this_call"] = time.time() - t0
    return summary
