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

import hashlib
import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .candidates import OpSpace, op_space
from .config import SearchConfig, TrainConfig, resolve_config
from .errors import ConfigError
from .genotype import Genotype, none_count, param_free_count, random_genotype
from .loop import RESUME_FREE, plain
from .remedies import select_from_history
from .rundir import (
    FILE_FORMAT,
    RunBusy,
    RunError,
    RunLock,
    atomic_save_figure,
    atomic_write_json,
    check_out_path,
    earlier_runs,
    read_epoch_log,
    read_result,
    read_run_json,
    revision,
)
from .search import run_search
from .select import SelectConfig, run_select
from .train import read_test_once, run_train

log = logging.getLogger(__name__)

# Settings that only change how a genotype is read off a finished search: arms differing only in
# these share their search runs.
DERIVATION_ONLY = ("max_param_free", "max_param_free_reduce", "early_stop_param_free", "early_stop_stable")


@dataclass(frozen=True)
class Arm:
    """A named search configuration: overrides on top of the study's base search settings."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Arm:
        """``name`` or ``name:key=value,key=value`` (values parsed as JSON where they can be)."""
        name, _, rest = text.partition(":")
        name = name.strip()
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise RunError(f"arm {text!r}: the name must be letters, digits, - or _ (e.g. cap2:max_param_free=2)")
        overrides: dict[str, Any] = {}
        for item in filter(None, (s.strip() for s in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise RunError(f"arm {text!r}: {item!r} is not key=value")
            overrides[key.strip().replace("-", "_")] = _value(value.strip())
        return cls(name, overrides)


def _value(text: str) -> Any:
    try:
        return json.loads(text.lower() if text.lower() in ("true", "false", "null") else text)
    except json.JSONDecodeError:
        return text


@dataclass(frozen=True)
class StudyConfig:
    dataset: str = "fashion-mnist"
    data: str | None = None
    arms: tuple[Arm, ...] = (Arm("pcdarts"),)
    searches: int = 3  # searches (seeds 0..S-1) per arm
    random_cells: int = 5  # random cells (seeds 0..R-1)
    train_seed: int = 0  # one training seed for every cell
    search: dict[str, Any] = field(default_factory=dict)  # base search settings (on the dataset's defaults)
    train: dict[str, Any] = field(default_factory=dict)  # the one training protocol
    primary: str | None = None  # the pre-registered arm whose comparison with random cells is the verdict
    rule: str = "effect"  # the verdict: effect (p < 0.05, >= 1 random SD) or superiority (p < 0.05, U/(n1 n2) >= 0.75)
    retrain_random: int = 0  # the first N random cells trained again with training seed + 1: the noise floor
    oneshot_arm: str | None = None  # this arm's supernets also score every random cell with inherited weights
    oneshot_images: int = 2000  # hold-out images (per class, fixed) each one-shot score reads

    def __post_init__(self) -> None:
        if self.searches < 0 or self.random_cells < 0:
            raise ConfigError("searches and random cells must be >= 0")
        if not self.arms and self.searches:
            raise ConfigError("a study with searches needs at least one arm")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names) or "random" in names:
            raise ConfigError(f"arm names must be unique and not 'random', got {names}")
        if self.primary is not None and self.primary not in names:
            raise ConfigError(f"the primary arm {self.primary!r} is not one of the arms {names}")
        for part, keys in (("train", ("genotype", "dataset", "data", "seed")), ("search", ("dataset", "data", "seed"))):
            own = sorted(set(getattr(self, part)) & set(keys))
            if own:  # set by the study itself: a value here would be recorded but not used
                raise ConfigError(
                    f"--{part}-set {own[0]}=... is set by the study itself (cells, --dataset, --data, seeds): drop it"
                )
        if self.rule not in RULES:
            raise ConfigError(f"the verdict rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        if not 0 <= self.retrain_random <= self.random_cells:
            raise ConfigError(f"retrain random must be between 0 and the {self.random_cells} random cells")
        if self.oneshot_arm is not None and self.oneshot_arm not in names:
            raise ConfigError(f"the one-shot arm {self.oneshot_arm!r} is not one of the arms {names}")
        if self.oneshot_images < 1:
            raise ConfigError(f"one-shot images must be >= 1, got {self.oneshot_images}")

    def search_config(self, arm: Arm, seed: int) -> SearchConfig:
        overrides = {k: v for k, v in arm.overrides.items() if not k.startswith("select")}
        values = {**self.search, **overrides, "seed": seed, "data": self.data}
        try:
            return resolve_config(SearchConfig, self.dataset, values)
        except (TypeError, ValueError) as exc:
            raise RunError(f"arm {arm.name!r}: {exc}") from None

    def select_config(self, arm: Arm) -> SelectConfig | None:
        """An arm's perturbation-based selection (``select=pt``, ``select_tune_epochs``, ...), or None."""
        keys = {k: v for k, v in arm.overrides.items() if k.startswith("select")}
        if not keys:
            return None
        values = {("method" if k == "select" else k.removeprefix("select_")): v for k, v in keys.items()}
        try:
            return SelectConfig(**values)
        except (TypeError, ValueError) as exc:
            raise RunError(f"arm {arm.name!r}: {exc}") from None

    def train_config(self) -> TrainConfig:
        try:
            return resolve_config(TrainConfig, self.dataset, {**self.train, "seed": self.train_seed, "data": self.data})
        except (TypeError, ValueError) as exc:
            raise RunError(f"study training settings: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["arms"] = [{"name": a.name, "overrides": a.overrides} for a in self.arms]
        if d["primary"] is None:  # studies from before the setting pin the same file as before
            del d["primary"]
        for key, default in NEW_DEFAULTS.items():  # likewise for the settings added after it
            if d[key] == default:
                del d[key]
        return d


RULES = ("effect", "superiority")
NEW_DEFAULTS = {"rule": "effect", "retrain_random": 0, "oneshot_arm": None, "oneshot_images": 2000}
"""Study settings added after studies were first pinned, at the values those studies ran with."""


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


def check_reused(run: Path, cfg: SearchConfig | TrainConfig) -> None:
    """A finished sub-run is reused only if it was made with the settings this study asks for.

    Settings that do not change a result (threads, device, data path, ...) may differ; a setting the
    sub-run's config.json lacks (added to pcdarts later) counts as its default.
    """
    f = run / "config.json"
    try:
        saved = read_run_json(f)
    except RunError:
        raise RunError(f"{f} is missing or unreadable: delete {run} to have the study redo it") from None
    defaults = asdict(type(cfg)())
    for key, value in asdict(cfg).items():
        if key not in RESUME_FREE and plain(saved.get(key, defaults.get(key))) != plain(value):
            raise RunError(
                f"{run} was made with {key}={saved.get(key)!r}, this study asks for {value!r}: delete that "
                "folder to redo it, or start the study in a new folder"
            )


PENDING_PIN = "study_config_searches.json"  # all but the training epochs, by a run started before its budget


def _without_epochs(d: dict[str, Any]) -> dict[str, Any]:
    """A pinned study's settings but the training epochs (what a run waiting for its budget pins)."""
    if isinstance(d.get("train"), dict):
        d = {**d, "train": {k: v for k, v in d["train"].items() if k != "epochs"}}
    return d


def _search_identity(arm: Arm, seed: int) -> str:
    """Run-folder name of an arm's search: the arm's overrides that change the search itself, and the seed.

    The base settings are pinned by the study's own config file, so the name stays stable when the
    library gains new settings with neutral defaults.
    """
    changing = {
        k: v for k, v in sorted(arm.overrides.items()) if k not in DERIVATION_ONLY and not k.startswith("select")
    }
    return f"s{_digest(changing)}-seed{seed}"


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def check_pinned(out: Path, name: str, mine: dict[str, Any], what: str) -> None:
    """Pin a folder to its settings: the first run writes ``name``, later runs must ask for the same."""
    check_out_path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / name
    for attempt in range(40):  # a short lock: two processes starting at once cannot both pin other settings
        try:
            with RunLock(out):
                if not saved.is_file():
                    _check_unpinned(out, what)
                if saved.is_file():
                    theirs = read_run_json(saved)
                    if theirs != mine:
                        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                        raise RunError(
                            f"{out} holds a {what} with other settings ({', '.join(diff)}): run it with the same "
                            "settings to continue, or choose a new folder"
                        )
                else:
                    atomic_write_json(saved, mine)
                return
        except RunBusy:
            if attempt == 39:
                raise
            time.sleep(0.25)


PINS = ("study_config.json", PENDING_PIN, "fidelity_config.json")
"""The files that make a folder a study's or a calibration's (a study may run in its calibration's folder)."""


def _check_unpinned(out: Path, what: str) -> None:
    """A folder gets a new pin only when it is empty or already a study's or calibration's: a user's folder
    with files of its own (a study.json or study.png of theirs, say) is refused with what it holds."""
    found = [e.name for e in out.iterdir() if e.name != RunLock.NAME and not e.name.endswith(".tmp")]
    if not found or any(_pinned(out / p) for p in PINS):
        return
    shown = ", ".join(repr(n) for n in sorted(found)[:4]) + (", ..." if len(found) > 4 else "")
    raise RunError(
        f"{out} is not empty and holds no pcdarts {what} ({shown}): --out wants a new or empty folder, or the "
        f"folder of a {what} to continue"
    )


def _pinned(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    try:
        return isinstance(read_run_json(path), dict)
    except RunError:
        return False


def train_folder(out: Path, cfg: TrainConfig, genotype: Genotype) -> Path:
    """A cell's training folder in a study or calibration: one per (cell, epoch budget, training seed).

    The rest of the protocol is pinned by the folder's config file and checked on reuse. Study I's
    folders (``g<digest>`` alone) are still found.
    """
    digest = _digest(genotype.to_dict())
    old = out / "train" / f"g{digest}"
    if (old / "result.json").is_file():
        try:
            check_reused(old, cfg)
            return old
        except RunError:  # made with another protocol, seed or budget: this one gets its own folder
            pass
    return out / "train" / f"g{digest}-e{cfg.epochs}-t{cfg.seed}"


def _cpu_sum(epochs: Iterable[Mapping[str, Any]], *more: float | None) -> float | None:
    """CPU seconds of the epochs (and ``more``), or None if any of them was run before CPU time was kept."""
    parts = [m.get("epoch_cpu_seconds") for m in epochs] + list(more)
    return None if any(p is None for p in parts) else float(sum(parts))


def train_cell(
    out: Path, cfg: TrainConfig, genotype: Genotype, *, progress: bool = True, read_test: bool = True
) -> dict[str, Any]:
    """Train ``genotype`` under ``cfg`` in its folder of ``out``, or read the finished training back.

    ``read_test=False`` (a calibration) never reads the test split; a later call with ``read_test``
    reads it once for the shipped model. Raises ``RunBusy`` while another process trains that cell.
    """
    run = train_folder(out, cfg, genotype)
    if (run / "result.json").is_file():
        check_reused(run, cfg)
    else:
        resume = (run / "checkpoint.pt").is_file()
        log.info("training %s (%d epochs, seed %d) -> %s", genotype.to_text()[:50] + "...", cfg.epochs, cfg.seed, run)
        result = run_train(
            cfg, run, resume=resume, overwrite=not resume, progress=progress, genotype=genotype, read_test=read_test
        )
        if result.get("stopped"):
            raise KeyboardInterrupt
    if read_test:
        with RunLock(run):  # the one reading of the test split, by one process
            result = read_test_once(cfg, run, device="cpu" if cfg.device == "auto" else cfg.device)
    else:
        result = read_result(run / "result.json")
    result["run"] = str(run.relative_to(out))
    result["train_seed"] = cfg.seed
    result.update(run_revisions(run))
    return result


def run_revisions(run: Path, prefix: str = "") -> dict[str, Any]:
    """The code that made a sub-run, for its study cell, from the run's environment.json.

    ``revision`` is the code that wrote the file last (None without one), ``earlier_revisions`` the other
    code that ran earlier parts of it (``rundir.write_environment``); ``prefix`` names the part.
    """
    try:
        env = read_run_json(run / "environment.json")
    except RunError:
        return {f"{prefix}revision": None}
    found = {f"{prefix}revision": env.get("git")}
    earlier = [e.get("git") for e in earlier_runs(env)]
    if earlier:
        found[f"{prefix}earlier_revisions"] = earlier
    return found


class BudgetPending(Exception):
    """A unit has done what it can and needs the training budget, which its calibration has not chosen yet."""


def run_units(
    units: list[tuple[str, Callable[[], dict[str, Any]]]],
    record: Callable[[int, dict[str, Any]], None],
    *,
    poll_seconds: float = 30.0,
) -> list[int]:
    """Run work units in order; one another process holds is skipped and taken up again once it is free.

    Two processes running the same study or calibration thus share its units without running one twice.
    A unit that raises ``BudgetPending`` is tried again on the next pass; the units still waiting for the
    budget when nothing else is left to do (or running elsewhere) are returned, not waited for.
    """
    pending, tried = list(range(len(units))), set()
    while pending:
        busy, waiting, progressed = [], [], False
        for i in pending:
            name, unit = units[i]
            level = logging.DEBUG if i in tried else logging.INFO  # a unit tried again says so once
            tried.add(i)
            log.log(level, "unit %d/%d: %s", i + 1, len(units), name)
            try:
                cell = unit()
            except RunBusy as exc:
                log.log(level, "%s: %s; taking the next unit", name, exc)
                busy.append(i)
                continue
            except BudgetPending as exc:
                log.log(level, "%s: %s", name, exc)
                waiting.append(i)
                continue
            record(i, cell)
            progressed = True
        if not progressed:
            if not busy:
                return waiting
            time.sleep(poll_seconds)  # everything left is running elsewhere: read it back when it is done
        pending = sorted(busy + waiting)
    return []


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
        self.train_cfg = cfg.train_config()
        if threads:
            self.train_cfg = replace(self.train_cfg, threads=threads)
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

    def _search(self, arm: Arm, seed: int) -> tuple[Path, SearchConfig]:
        scfg = self.cfg.search_config(arm, seed)
        if self.threads:
            scfg = replace(scfg, threads=self.threads)
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
        train_cfg = cfg.train_config()
        if self.threads:
            train_cfg = replace(train_cfg, threads=self.threads)
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
        sel = self.cfg.select_config(arm)
        if sel is not None:  # DARTS-PT from the end of the shared search (the derivation remedies do not apply)
            if self.threads:
                sel = replace(sel, threads=self.threads)
            select_dir = run / f"select-{sel.label()}"
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

    def plan(self) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
        """Work units in the order they run: round-robin over seeds so partial results cover every arm."""
        units: list[tuple[str, Callable[[], dict[str, Any]]]] = []
        for i in range(max(self.cfg.searches, self.cfg.random_cells)):
            if i < self.cfg.searches:
                for arm in self.cfg.arms:
                    units.append((f"{arm.name} seed {i}", lambda arm=arm, i=i: self._searched_cell(arm, i)))
            if i < self.cfg.random_cells:
                units.append((f"random seed {i}", lambda i=i: self._random_cell(i)))
            if i < self.cfg.retrain_random:
                units.append((f"random seed {i}, training seed +1", lambda i=i: self._random_cell(i, retrain=True)))
        return units

    def cell_space(self) -> tuple[str, OpSpace]:
        """The cell space (``darts`` or ``nasbench201``) and op space the random cells are drawn from."""
        cells = {self.cfg.search_config(arm, 0).cell for arm in self.cfg.arms}
        if not cells:
            cells = {self.cfg.search.get("cell", "darts")}
        if len(cells) > 1:
            raise ConfigError(f"the arms search different cell spaces ({', '.join(sorted(cells))}): one per study")
        cell = next(iter(cells))
        if self.cfg.arms:
            return cell, self.op_space()
        return cell, op_space(self.cfg.search.get("space", "nb201" if cell == "nasbench201" else "darts"),
                              self.cfg.search.get("ops"))  # fmt: skip

    def op_space(self) -> OpSpace:
        """The op space of the study's searches, which its random cells are drawn from (one for all arms)."""
        spaces = {}
        for arm in self.cfg.arms:
            scfg = self.cfg.search_config(arm, 0)
            spaces[arm.name] = op_space(scfg.space, scfg.ops)
        if not spaces:  # random cells only: the base search settings name the space
            return op_space(self.cfg.search.get("space", "darts"), self.cfg.search.get("ops"))
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

    def write(self, *, complete: bool = False) -> dict[str, Any]:
        summary = {
            "format": FILE_FORMAT,  # search_epoch and every epoch counted from 1
            "config": self.cfg.to_dict(),
            "revision": revision(),
            "train_config": asdict(self.train_cfg),
            "complete": complete,
            "cells": self.cells,
            "arms": summarise_arms(self.cells),
            "primary": self.cfg.primary,
            "comparisons": [c for a in self.cfg.arms if (c := compare_with_random(self.cells, a.name)) is not None],
        }
        atomic_write_json(self.out / "study.json", summary)
        return summary


def random_cell(cell: str, seed: int, ops: tuple[str, ...]) -> Any:
    """Random cell ``seed`` of a cell space: the DARTS cell's (two inputs per node, no ``none``) or the
    NAS-Bench-201 cell's (uniform over every cell, ``none`` included)."""
    if cell == "nasbench201":
        from .nb201 import random_nb201

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


def summarise_arms(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per arm: n, mean and std of test accuracy, min, max, mean params and parameter-free ops."""
    arms: dict[str, list[dict[str, Any]]] = {}
    for c in cells:
        arms.setdefault(c["arm"], []).append(c)
    rows = []
    for name, group in arms.items():
        acc = [c["test_accuracy"] for c in group]
        mean, std = _mean_std(acc)
        rows.append(
            {
                "arm": name,
                "kind": group[0]["kind"],
                "n": len(group),
                "mean": mean,
                "std": std,
                "min": min(acc),
                "max": max(acc),
                "params": statistics.fmean(c["params"] for c in group),
                "param_free_normal": statistics.fmean(c["param_free_normal"] for c in group),
                "param_free_reduce": statistics.fmean(c.get("param_free_reduce", math.nan) for c in group),
                **(
                    {"none_edges": statistics.fmean(c["none_edges"] for c in group)}
                    if all("none_edges" in c for c in group)
                    else {}
                ),
                "search_seconds": statistics.fmean(c.get("search_seconds", 0.0) for c in group),
                "train_seconds": statistics.fmean(c["train_seconds"] for c in group),
            }
        )
    return rows


def mann_whitney_greater(a: list[float], b: list[float]) -> tuple[float, str]:
    """One-sided Mann-Whitney U p-value for ``a`` > ``b`` and how it was computed.

    Exact: U's distribution over every way to split the pooled values into groups of len(a) and len(b),
    tied values at their mid-ranks, so ties (test accuracies move in steps of 1/10,000) are counted as they
    fall. The splits are counted by dynamic programming over the pooled values (how many subsets of each
    size reach each rank sum), so 6 against 60 cells (90 million splits) is as exact as 6 against 12.
    scipy's ``method="exact"`` looks U up in the distribution without ties: with ties its p is off (more
    often too large than too small); without ties the two agree.
    """
    from scipy.stats import rankdata

    n, m = len(a), len(b)
    twice = [int(round(2 * r)) for r in rankdata(list(a) + list(b))]  # mid-ranks are halves: exact integers
    observed = sum(twice[:n])
    ways: list[dict[int, int]] = [{0: 1}] + [{} for _ in range(n)]  # ways[k][s]: subsets of size k, rank sum s
    for r in twice:
        for k in range(n, 0, -1):
            for total, count in ways[k - 1].items():
                ways[k][total + r] = ways[k].get(total + r, 0) + count
    at_least = sum(count for total, count in ways[n].items() if total >= observed)
    return at_least / math.comb(n + m, n), "exact, ties at mid-ranks"


def superiority(a: list[float], b: list[float]) -> float:
    """Probability of superiority U / (n1 n2): the share of (a, b) pairs where a wins, ties counting half."""
    wins = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    return wins / (len(a) * len(b))


def compare_with_random(cells: list[dict[str, Any]], arm: str) -> dict[str, Any] | None:
    """An arm against the random cells on test accuracy: one-sided Mann-Whitney U (arm > random, exact) and
    the effect in random standard deviations. None until each side has two cells."""
    a = [c["test_accuracy"] for c in cells if c["arm"] == arm]
    r = [c["test_accuracy"] for c in cells if c["kind"] == "random"]
    if len(a) < 2 or len(r) < 2:
        return None
    (ma, _), (mr, sr) = _mean_std(a), _mean_std(r)
    p, how = mann_whitney_greater(a, r)
    return {
        "arm": arm,
        "n": len(a),
        "n_random": len(r),
        "margin": ma - mr,
        "effect_sd": (ma - mr) / sr if sr > 0 else math.nan,
        "superiority": superiority(a, r),
        "p_value": p,
        "test": f"one-sided Mann-Whitney U (arm > random), {how}",
    }


def recompute_comparisons(study: dict[str, Any]) -> dict[str, Any]:
    """A study.json's comparisons computed again from its cells by this revision's test (a study written by
    an older revision keeps its cells; only the statistics are redone)."""
    arms = [a["name"] for a in study["config"]["arms"]]
    if "comparisons_as_run" not in study:  # what the study's own revision wrote, kept beside for the record
        study["comparisons_as_run"] = study.get("comparisons", [])
    study["comparisons"] = [c for a in arms if (c := compare_with_random(study["cells"], a)) is not None]
    study["comparisons_revision"] = revision()
    return study


def primary_verdict(study: dict[str, Any]) -> str | None:
    """The pre-registered decision: the primary arm beats random iff p < 0.05 and the effect is >= 1 random SD."""
    primary = study.get("primary")
    comp = next((c for c in study.get("comparisons", []) if c["arm"] == primary), None)
    if primary is None:
        return None
    if comp is None:
        return f"primary arm {primary!r}: not enough cells yet to compare with random cells"
    if study.get("config", {}).get("rule", "effect") == "superiority":
        sup = comp.get("superiority", math.nan)
        beats = comp["p_value"] < 0.05 and sup >= 0.75
        return (
            f"primary arm {primary!r} ({comp['n']} cells) vs random ({comp['n_random']}): probability of superiority "
            f"{sup:.2f}, margin {100 * comp['margin']:+.2f} points ({comp['effect_sd']:+.2f} random SDs), one-sided "
            f"Mann-Whitney p = {comp['p_value']:.3g}: "
            + ("BEATS random cells (p < 0.05 and superiority >= 0.75)" if beats else "does NOT beat random cells")
        )
    beats = comp["p_value"] < 0.05 and comp["effect_sd"] >= 1.0
    return (
        f"primary arm {primary!r} ({comp['n']} cells) vs random ({comp['n_random']}): margin "
        f"{100 * comp['margin']:+.2f} points, effect {comp['effect_sd']:+.2f} random SDs, one-sided Mann-Whitney "
        f"p = {comp['p_value']:.3f}: "
        + ("BEATS random cells (p < 0.05 and effect >= 1 SD)" if beats else "does NOT beat random cells at this scale")
    )


def format_table(rows: list[dict[str, Any]], *, reduce: bool = False) -> str:
    """The per-arm table as Markdown (accuracies in %); ``reduce`` adds the reduction cell's parameter-free ops."""
    head = "| arm | cells | test accuracy mean ± std | min | max | mean params | param-free ops (normal) |"
    lines = [head + (" param-free ops (reduce) |" if reduce else ""), "|---" * (8 if reduce else 7) + "|"]
    for r in rows:
        lines.append(
            f"| {r['arm']} | {r['n']} | {100 * r['mean']:.2f} ± "
            + (f"{100 * r['std']:.2f} %" if r["n"] > 1 else "n/a (one cell)")
            + f" | {100 * r['min']:.2f} % | "
            f"{100 * r['max']:.2f} % | {r['params']:,.0f} | {r['param_free_normal']:.1f} |"
            + (f" {r.get('param_free_reduce', math.nan):.1f} |" if reduce else "")
        )
    return "\n".join(lines)


def format_comparisons(study: dict[str, Any]) -> str:
    """Every searched arm against the random cells, the pre-registered primary first; the others are marked
    secondary (no correction for several tests is claimed, and they do not decide the verdict)."""
    primary = study.get("primary")
    comps = sorted(study.get("comparisons", []), key=lambda c: c["arm"] != primary)
    if not comps:
        return "No searched arm has two cells yet: no comparison with the random cells."
    as_run = {c["arm"]: c for c in study.get("comparisons_as_run", [])}
    if all(c.get("test") == next((d.get("test") for d in comps if d["arm"] == a), None) for a, c in as_run.items()):
        as_run = {}  # computed the same way: nothing to show beside
    extra = " p as the study's revision wrote it |" if as_run else ""
    lines = [
        "| arm | role | cells | random cells | margin | effect (random SDs) | one-sided Mann-Whitney p |" + extra,
        "|---|---|---|---|---|---|---|" + "---|" * bool(as_run),
    ]
    for c in comps:
        role = "**primary**" if c["arm"] == primary else "secondary"
        old = as_run.get(c["arm"])
        lines.append(
            f"| {c['arm']} | {role} | {c['n']} | {c['n_random']} | {100 * c['margin']:+.2f} points | "
            f"{c['effect_sd']:+.2f} | {c['p_value']:.3f} |"
            + ((f" {old['p_value']:.3f} |" if old else " - |") if as_run else "")
        )
    tests = sorted({c.get("test", "") for c in comps} - {""})
    note = "\n\np: " + "; ".join(tests) + "." if tests else ""
    if as_run:
        runs = sorted({c.get("test", "") for c in as_run.values()} - {""})
        note += " The last column is the p-value that the study's own revision wrote, by its test: "
        note += ("; ".join(runs) or "not recorded") + "."
    return "\n".join(lines) + note


def format_cells(study: dict[str, Any]) -> str:
    """Every cell of a study as a Markdown table: arm, seeds, accuracies, size, parameter-free ops, the cells."""
    lines = [
        "| arm | seed | test accuracy | val accuracy | params | param-free (normal / reduce) | epochs | normal cell "
        "| reduction cell |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in study["cells"]:
        g = c["genotype"]
        val = f"{100 * c['val_accuracy']:.2f} %" if c.get("val_accuracy") is not None else "-"
        lines.append(
            f"| {c['arm']} | {c['seed']} | {100 * c['test_accuracy']:.2f} % | {val} | {c['params']:,} | "
            f"{c['param_free_normal']} / {c.get('param_free_reduce', '-')} | {c.get('budget_epochs', '-')} | "
            + ", ".join(f"{op}({i})" for op, i in g["normal"])
            + " | "
            + ", ".join(f"{op}({i})" for op, i in g["reduce"])
            + " |"
        )
    return "\n".join(lines)


def time_by_part(study: dict[str, Any], fidelity: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Wall and CPU time of each part of a study, counted once however many arms share a run: the calibration's
    trainings (which a study reuses as its random arm), the searches, the perturbation-based selections, and the
    trainings not already counted. Each run uses the threads it was given (one in the studies here). A part's
    CPU time is None when any of its runs was made before CPU time was kept."""
    Time = tuple[float, float | None]  # wall, CPU
    calibrated: dict[Any, Time] = {
        r["train_run"]: (r["train_seconds"], r.get("train_cpu_seconds")) for r in (fidelity or {}).get("rows", [])
    }
    searches: dict[Any, Time] = {}
    selections: dict[Any, Time] = {}
    trainings: dict[Any, Time] = {}
    for c in study["cells"]:
        if c["kind"] == "searched":
            select = (c.get("select_seconds", 0.0), c.get("select_cpu_seconds"))
            run = c.get("search_run", f"{c['arm']}-{c['seed']}")
            if "search_run_seconds" in c:  # the whole shared search, however many epochs this arm read
                search = (c["search_run_seconds"], c.get("search_run_cpu_seconds"))
            else:  # cells written before 2026-12-05: the longest reading is the best estimate
                cpu = c.get("search_cpu_seconds")
                search = (c.get("search_seconds", 0.0) - select[0], None if cpu is None else cpu - (select[1] or 0.0))
                if "selection" in c and select[1] is None:
                    search = (search[0], None)
            if search[0] >= searches.get(run, (-1.0, None))[0]:
                searches[run] = search
            if "selection" in c:
                selections[run, c["selection"]] = select
        if c["train_run"] not in calibrated:
            trainings[c["train_run"]] = (c["train_seconds"], c.get("train_cpu_seconds"))
    parts = [
        ("calibration trainings", calibrated),
        ("searches", searches),
        ("selections (DARTS-PT)", selections),
        ("trainings of searched cells" if calibrated else "trainings", trainings),
    ]
    out = []
    for name, runs in parts:
        if runs:
            cpus = [cpu for _, cpu in runs.values()]
            cpu_total = None if any(c is None for c in cpus) else float(sum(cpus))
            wall = float(sum(w for w, _ in runs.values()))
            out.append({"part": name, "runs": len(runs), "seconds": wall, "cpu_seconds": cpu_total})
    return out


def format_times(parts: list[dict[str, Any]]) -> str:
    """``time_by_part`` as a Markdown table in hours: each run's own wall and CPU time, summed (runs that
    went on at the same time add up, so two processes sharing a part finish it in about half the wall sum)."""

    def cpu(seconds: float | None) -> str:
        return "not recorded" if seconds is None else f"{seconds / 3600:.1f}"

    lines = ["| part | runs | summed run time (wall, h) | summed CPU time (h) |", "|---|---|---|---|"]
    for p in parts:
        lines.append(f"| {p['part']} | {p['runs']} | {p['seconds'] / 3600:.1f} | {cpu(p.get('cpu_seconds'))} |")
    total = sum(p["seconds"] for p in parts)
    cpus = [p.get("cpu_seconds") for p in parts]
    recorded = [c for c in cpus if c is not None]
    cpu_all = cpu(sum(recorded)) + (" (recorded parts)" if recorded and len(recorded) < len(cpus) else "")
    if not recorded:
        cpu_all = "not recorded"
    lines.append(f"| all | {sum(p['runs'] for p in parts)} | {total / 3600:.1f} | {cpu_all} |")
    return "\n".join(lines)


def verdict(rows: list[dict[str, Any]]) -> str:
    """Does any searched arm's mean beat the random mean by more than the random arm's std?"""
    rnd = next((r for r in rows if r["kind"] == "random"), None)
    searched = [r for r in rows if r["kind"] == "searched"]
    if rnd is None or not searched or rnd["n"] < 2:
        return "not enough cells yet to compare with random cells"
    best = max(searched, key=lambda r: r["mean"])
    margin = best["mean"] - rnd["mean"]
    beats = margin > rnd["std"]
    return (
        f"best searched arm {best['arm']!r}: {100 * best['mean']:.2f} % vs random {100 * rnd['mean']:.2f} % "
        f"(margin {100 * margin:+.2f} points, random std {100 * rnd['std']:.2f}): "
        + ("beats random by more than the random spread" if beats else "does NOT beat random by more than its spread")
    )


def plot_study(study: dict[str, Any], out: str | Path) -> Path:
    """Test accuracy against parameters: one colour per arm, random cells as a grey cloud."""
    import matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    colours = iter(matplotlib.colormaps["tab10"].colors)
    for row in study["arms"]:
        cells = [c for c in study["cells"] if c["arm"] == row["arm"]]
        xs = [c["params"] / 1e3 for c in cells]
        ys = [100 * c["test_accuracy"] for c in cells]
        if row["kind"] == "random":
            ax.scatter(xs, ys, s=40, c="0.6", alpha=0.7, label=f"random (n={len(cells)})", marker="o")
        else:
            ax.scatter(
                xs,
                ys,
                s=60,
                color=next(colours),
                label=f"{row['arm']} (n={len(cells)})",
                marker="D",
                edgecolors="k",
                linewidths=0.5,
            )
        ax.axhline(
            100 * row["mean"],
            color="0.6" if row["kind"] == "random" else ax.collections[-1].get_facecolor()[0],
            lw=0.8,
            ls="--",
        )
    ax.set_xlabel("parameters (thousands)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{study['config']['dataset']}: searched vs random cells (dashed: arm means)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out = Path(out)
    atomic_save_figure(fig, out, dpi=120)
    return out


def load_study(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    f = path / "study.json" if path.is_dir() else path
    if not f.is_file():
        raise RunError(f"no study.json in {path}: run `pcdarts study --out {path}` first")
    try:
        data = json.loads(f.read_text())
        data["cells"], data["arms"]  # noqa: B018 - the two keys every reader needs
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
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
