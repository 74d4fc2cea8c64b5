"""Perturbation-based selection (DARTS-PT): read the cell off a trained supernet by what removing a part costs.

The largest alpha is a poor guide to what the supernet relies on (Wang et al., ICLR 2021, "Rethinking
Architecture Selection in Differentiable NAS"; their code ruocwang/darts-pt, ``sota/cnn/projection.py``).
DARTS-PT instead asks the supernet: starting from a finished search,

In the NAS-Bench-201 cell (``--cell nasbench201``) only step 1 runs, one edge per round, and ``none`` is a
candidate like any op, as in the paper's code for that space (``nasbench201/projection.py``; it tunes 5
epochs between decisions there, ``--tune-epochs 5``); every edge is kept, so there is no topology step.

1. **ops**: visit the edges in a seeded random order, one edge of the normal and one of the reduction cell
   per round. For the edge, score each candidate op by the supernet's validation accuracy with that op's
   weight set to zero; keep the op whose removal hurts most (the lowest accuracy). The edge's mixing
   weights become that op alone. Between two rounds, fine-tune the supernet (weights and alpha/beta,
   weight lr a tenth of the search's, cosine-annealed over all the tuning);
2. **topology**: then, node by node in a seeded random order (one node per cell per round), remove input
   edges one at a time, each time the one whose removal leaves the highest accuracy, until two remain.

As in the paper's code, BatchNorm runs in train mode while scoring (batch statistics; the running
statistics are put back afterwards), and the scores come from the search's arch (validation) split, never
the test split. ``none`` is never a candidate: a derived cell cannot hold it (the paper's code scores it too).

Settings the paper fixes and this module makes choices of (named in the output): ``tune_epochs``, the
fine-tuning between decisions (the paper: 10 epochs, ``--proj_intv``), and ``score_batches``, how much of the
arch split scores a candidate (the paper: all of it). Shortened values make selection affordable on a CPU.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import make_stream, search_parts
from ..errors import ConfigError, RunError
from ..files import atomic_write_json, read_run_json, require_keys
from ..nas.architect import Architect
from ..nas.perturbation import Decider, NB201Projection, Projection, plan_op_rounds, plan_rounds
from ..nas.space import STEPS, num_edges
from .config import SearchConfig
from .engine import count_step, epoch_stats, new_accumulator, search_step, sgd_impl
from .formats import check_older_selection, older_pin_free, older_select_pin
from .inputs import check_data, load_data, make_augment
from .loop import Context, run_task
from .metrics import MetricsLog
from .rundir import _transient
from .search import load_finished_supernet

log = logging.getLogger(__name__)


PAPER_TUNE_EPOCHS = 10.0  # DARTS-PT's --proj_intv on CIFAR-10


@dataclass(frozen=True)
class SelectConfig:
    method: str = "pt"  # pt: perturbation-based (DARTS-PT); the magnitude rule is the search's own genotype
    tune_epochs: float = PAPER_TUNE_EPOCHS  # fine-tuning epochs between two decisions (DARTS-PT: 10)
    score_batches: int = 0  # arch-split batches that score each candidate (0: the whole split, as DARTS-PT)
    seed: int = 0  # the order in which edges and nodes are decided
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    threads: int = 0  # CPU intra-op threads (0 = torch default)

    def __post_init__(self) -> None:
        if self.method != "pt":
            raise ConfigError(f"selection method must be pt (perturbation-based), got {self.method!r}")
        if not (math.isfinite(self.tune_epochs) and 0 <= self.tune_epochs <= 1000):
            raise ConfigError(f"tune epochs must be between 0 and 1000, got {self.tune_epochs}")
        if self.score_batches < 0:
            raise ConfigError(f"score batches must be >= 0 (0: the whole arch split), got {self.score_batches}")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0, got {self.threads}")

    def label(self) -> str:
        """How this selection differs from the paper's, for file names and reports."""
        tune = "paper" if self.tune_epochs == PAPER_TUNE_EPOCHS else f"{self.tune_epochs:g}"
        score = "all" if self.score_batches == 0 else str(self.score_batches)
        return f"pt-tune{tune}-score{score}-seed{self.seed}"


RESULT_FREE = ("device", "threads")  # settings that do not change a selection's decisions


@dataclass(frozen=True)
class SelectRun:
    """What the shared run loop reads for one selection: a round of decisions is one of its epochs."""

    epochs: int  # rounds: one per edge (an edge of each cell), then one per node of the topology
    seed: int  # the search's seed: the generators start from it, as they did in the search
    deterministic: bool
    device: str
    threads: int
    method: str
    tune_epochs: float
    score_batches: int
    order_seed: int  # SelectConfig.seed: the order in which edges and nodes are decided


def _search_config(run: Path) -> SearchConfig:
    saved = read_run_json(run / "config.json")
    try:
        values = {k: v for k, v in saved.items() if k in SearchConfig.__dataclass_fields__}
        return SearchConfig(**values)
    except (TypeError, ValueError) as exc:
        raise RunError(
            f"{run / 'config.json'} is not a search run's config ({type(exc).__name__}): give a search run folder"
        ) from None


def _digest(path: Path) -> str:
    """The first 16 hex digits of a file's SHA-256, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _pin_file(out: Path) -> Path | None:
    """The file that pins a selection folder to its settings: config.json (select_config.json in older folders,
    :func:`~.formats.older_select_pin`). A selection stopped part-way by an older pcdarts is refused."""
    check_older_selection(out)
    f = out / "config.json"
    pin = read_run_json(f) if f.is_file() else None
    if isinstance(pin, dict) and {"tune_epochs", "search_arch_sha256"} <= set(pin) and pin.get("kind") == "select":
        return f
    return older_select_pin(out)


class Selector:
    """One perturbation-based selection from a finished search in ``run``, written to ``out``."""

    def __init__(self, run: str | Path, out: str | Path, cfg: SelectConfig, *, progress: bool = True):
        self.search_dir, self.out, self.cfg, self.progress = Path(run), Path(out), cfg, progress
        if not (self.search_dir / "genotype.json").is_file() or not (self.search_dir / "checkpoint.pt").is_file():
            raise RunError(f"{self.search_dir} is not a finished search run (it needs genotype.json and checkpoint.pt)")
        self.scfg = _search_config(self.search_dir)
        self.nb201 = self.scfg.cell == "nasbench201"  # ops only, none included; every edge kept

    # ------------------------------------------------------------ setup
    def _build(self, device: torch.device) -> None:
        """The supernet at the end of the search, its optimisers and data streams, on ``device``."""
        scfg, cfg = self.scfg, self.cfg
        self.device = device
        self.ds = ds = load_data(scfg)
        w_part, a_part = search_parts(ds, scfg.train_portion, scfg.seed)
        self.model, state = load_finished_supernet(
            self.search_dir, scfg, ds, device, keys=("arch_optimizer", "train_stream", "val_stream")
        )
        model = self.model
        self.nodes = model.steps
        self.projection = (NB201Projection if self.nb201 else Projection)(self.n_edges, model.ops)
        model.arch_transform = self.projection
        self.architect = Architect(
            model,
            lr=scfg.arch_lr,
            betas=(scfg.arch_beta1, scfg.arch_beta2),
            weight_decay=scfg.arch_weight_decay,
            grad_clip=scfg.arch_grad_clip,
            unrolled=False,
        )
        self.architect.optimizer.load_state_dict(state["arch_optimizer"])
        self.lr0 = scfg.lr / 10  # DARTS-PT: a fresh weight optimizer at a tenth of the search's lr
        self.w_opt = torch.optim.SGD(
            model.weight_parameters(),
            lr=self.lr0,
            momentum=scfg.momentum,
            weight_decay=scfg.weight_decay,
            **sgd_impl(device),
        )
        common = dict(device=device, workers=scfg.workers, augment=make_augment(scfg, ds, scfg.cutout), jitter=False)
        self.train = make_stream(ds, w_part, scfg.batch_size, train=True, seed=scfg.seed, **common)
        self.val = make_stream(ds, a_part, scfg.batch_size, train=True, seed=scfg.seed + 1, **common)
        self.train.load_state_dict(state["train_stream"])  # the data order goes on from where the search ended
        self.val.load_state_dict(state["val_stream"])
        # scored at the search's batch size, as DARTS-PT scores on its search loader (BN uses batch statistics)
        self.score_stream = make_stream(ds, a_part, scfg.batch_size, train=False, device=device, workers=scfg.workers)
        self.rounds = self.plan()
        self.decider = Decider(model, self.projection, self._score_batches, none_candidate=self.nb201)
        self.acc = new_accumulator(device)
        self.tune_steps = round(cfg.tune_epochs * len(self.train))
        self.total_tune = self.tune_steps * (len(self.rounds) - 1)

    @property
    def n_edges(self) -> int:
        from ..nas.nb201 import EDGES

        return len(EDGES) if self.nb201 else num_edges(STEPS)

    def plan(self) -> list[dict[str, Any]]:
        """The rounds of decisions: an edge of each cell per round, then (DARTS cell) a node of each."""
        return plan_op_rounds(self.n_edges, self.cfg.seed) if self.nb201 else plan_rounds(STEPS, self.cfg.seed)

    def _score_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The arch split's batches that score a candidate: all of them, or the first ``score_batches``."""
        self.score_stream.reset()
        for i, batch in enumerate(self.score_stream.epoch()):
            if self.cfg.score_batches and i >= self.cfg.score_batches:
                return
            yield batch

    # ------------------------------------------------------------ tuning
    def tune(self, done: int, after_step: Callable[[int], bool] | None = None) -> int:
        """``tune_steps`` search steps (weights and alpha/beta), the weight lr cosine-annealed over all tuning.

        A stop asked for part-way (``after_step`` returning True) waits for the round's end."""
        scfg = self.scfg
        weights = self.model.weight_parameters()
        self.model.train()
        for _ in range(self.tune_steps):
            lr = 0.5 * self.lr0 * (1 + math.cos(math.pi * done / max(self.total_tune, 1)))
            for g in self.w_opt.param_groups:
                g["lr"] = lr
            x, y = self.train.next_batch()
            val = self.val.next_batch()
            loss, logits, _ = search_step(self.model, self.model, self.architect, self.w_opt, x, y, val,
                                          grad_clip=scfg.grad_clip, eta=lr, weights=weights)  # fmt: skip
            done += 1
            count_step(self.acc, loss, logits, y, after_step, self.train)
        return done

    # ------------------------------------------------------------ the run (a Task of the shared loop)
    kind = checkpoint_kind = "select"
    final = "select_result.json"

    def loop_config(self) -> SelectRun:
        scfg, cfg = self.scfg, self.cfg
        return SelectRun(
            epochs=len(self.plan()),
            seed=scfg.seed,
            deterministic=scfg.deterministic,
            device=cfg.device,
            threads=cfg.threads,
            method=cfg.method,
            tune_epochs=cfg.tune_epochs,
            score_batches=cfg.score_batches,
            order_seed=cfg.seed,
        )

    def config_record(self) -> dict[str, Any]:
        """config.json: the selection's settings and the search it read (its final alpha/beta), which pin the folder."""
        arch = self.search_dir / "arch.json"  # the final alpha/beta; the checkpoint holds them where it is missing
        search_id = _digest(arch if arch.is_file() else self.search_dir / "checkpoint.pt")
        return {
            "kind": "select",
            **asdict(self.cfg),
            "search_run": str(self.search_dir),
            "search_arch_sha256": search_id,
        }

    def setup(self, ctx: Context, state: dict[str, Any] | None) -> int:
        if ctx.info.enabled:
            raise RunError("a selection runs in one process: start pcdarts select without torchrun")
        self.ctx = ctx
        self._build(ctx.device)
        check_data(self.ds, state, ctx.out)
        self.decisions: list[dict[str, Any]] = []
        self.done = 0  # tuning steps taken, over all rounds (the cosine schedule's position)
        if state is None:
            return 0
        keys = ("w_optimizer", "arch_optimizer", "val_stream", "projection", "decisions", "tune_done")
        require_keys(state, keys, ctx.out / "checkpoint.pt")
        self.model.load_state_dict(state["model"])
        self.w_opt.load_state_dict(state["w_optimizer"])
        self.architect.optimizer.load_state_dict(state["arch_optimizer"])
        ctx.load_stream(self.train, state["train_stream"])
        ctx.load_stream(self.val, state["val_stream"])
        self.projection.load_state_dict(state["projection"])
        self.decisions, self.done = list(state["decisions"]), int(state["tune_done"])
        self.round = int(state["epoch"])
        return self.round

    def steps(self) -> tuple[int, int]:
        n = self.tune_steps if self.round + 1 < len(self.rounds) else 0
        return n, n  # a round is not stopped part-way: the loop's stop waits for its end

    round = 0  # the round under way (the number of rounds finished)

    def run_epoch(self, epoch: int, after_step: Callable[[int], bool]) -> bool:
        """One round: decide an edge (or node) of each cell, then tune the supernet before the next round."""
        plan = self.rounds[epoch]
        for cell in self.projection.CELLS:
            decide = self.decider.decide_op if plan["kind"] == "op" else self.decider.decide_node
            self.decisions.append({"round": epoch, **decide(cell, plan[cell])})
        if epoch + 1 < len(self.rounds):
            self.done = self.tune(self.done, after_step)
        return False

    def end_epoch(self, epoch: int, seconds: float, metrics: MetricsLog, *, cpu_seconds: float) -> dict[str, Any]:
        stats = epoch_stats(self.acc)
        mine = [d for d in self.decisions if d["round"] == epoch]
        tuned = stats["steps"] > 0  # the last round, and every round with --tune-epochs 0, tunes nothing
        record = {
            "epoch": epoch + 1,
            "round_kind": self.rounds[epoch]["kind"],
            "accuracy": mine[0].get("accuracy"),  # the supernet's before this round's decisions (op rounds)
            "choices": {d["cell"]: d.get("choice", d.get("kept_inputs")) for d in mine},
            "train_loss": stats["loss"] if tuned else None,
            "train_acc": stats["accuracy"] if tuned else None,
            "tune_steps": stats["steps"],
            "epoch_seconds": seconds,
            "epoch_cpu_seconds": cpu_seconds,
        }
        metrics.write(record)
        self.acc = new_accumulator(self.device)
        self.round = epoch + 1
        return record

    def epoch_line(self, record: dict[str, Any], epoch: int, epochs: int) -> str:
        choices = ", ".join(f"{cell} {choice}" for cell, choice in record["choices"].items())
        return (
            f"select round {epoch + 1}/{epochs} ({record['round_kind']}): {choices} | {record['epoch_seconds']:.0f} s"
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "w_optimizer": self.w_opt.state_dict(),
            "arch_optimizer": self.architect.optimizer.state_dict(),
            "train_stream": self.ctx.stream_state(self.train),
            "val_stream": self.ctx.stream_state(self.val),
            "projection": self.projection.state_dict(),
            "decisions": self.decisions,
            "tune_done": self.done,
        }

    def stop_reason(self) -> str | None:
        return None

    def finish(self, *, stopped: bool, seconds: float, cpu_seconds: float | None) -> dict[str, Any]:
        rounds = len(self.rounds)
        if stopped:
            return {"stopped": True, "round": len({d["round"] for d in self.decisions}), "rounds": rounds}
        decisions, out = self.decisions, self.out
        ties = sum("tie" in d for d in decisions) + sum("tie" in s for d in decisions for s in d.get("steps", []))
        if ties:
            log.warning(
                "warning: %d of the selection's decisions were ties of the accuracy scores, broken by the "
                "magnitude rule (decisions.json marks them); more --score-batches separate ops better",
                ties,
            )
        genotype = self.projection.genotype(self.nodes)
        result = {
            "genotype": genotype.to_dict(),
            "method": "pt",
            "label": self.cfg.label(),
            "config": asdict(self.cfg),
            "search_run": str(self.search_dir),
            "rounds": rounds,
            "tune_steps_per_gap": self.tune_steps,
            "score_batches": self.cfg.score_batches,
            "ties": ties,
            "magnitude_genotype": read_run_json(self.search_dir / "genotype.json"),
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "revision": read_run_json(out / "environment.json").get("git"),
            "stopped": False,
        }
        atomic_write_json(out / "decisions.json", decisions)
        atomic_write_json(out / "genotype.json", genotype.to_dict())
        atomic_write_json(out / self.final, result)
        return result

    def run(self) -> dict[str, Any]:
        """Select, or resume the selection in ``out``; a finished one is read back."""
        out = self.out
        if out.resolve() == self.search_dir.resolve():
            raise RunError(f"--out {out} is the search run itself: give the selection a folder of its own")
        pin = _pin_file(out) if out.is_dir() else None
        if out.is_dir() and any(not _transient(e.name) for e in out.iterdir()) and pin is None:
            raise RunError(f"{out} is not empty and holds no selection: --out wants a new or empty folder")
        if pin is not None:
            theirs, mine = read_run_json(pin), self.config_record()
            free = {*RESULT_FREE, "kind", "search_run", *older_pin_free(pin, theirs)}
            diff = sorted(k for k in mine if k not in free and theirs.get(k) != mine[k])
            if diff:
                raise RunError(
                    f"{out} holds a selection with other settings or from another search ({', '.join(diff)}): "
                    "use the same settings, or another --out"
                )
        if (out / self.final).is_file():
            return read_run_json(out / self.final)
        resume = (out / "checkpoint.pt").is_file()
        # a selection stopped before its first round ended left only its pin and logs: it starts again
        return run_task(self, self.loop_config(), out, resume=resume, overwrite=pin is not None and not resume,
                        progress=self.progress)  # fmt: skip


def select_folder(run: str | Path, cfg: SelectConfig) -> Path:
    """Where a selection of ``run`` with ``cfg`` goes unless told: ``run/select-<label>``, one per setting."""
    return Path(run) / f"select-{cfg.label()}"


def run_select(run: str | Path, out: str | Path | None = None, cfg: SelectConfig | None = None, *,
               progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Perturbation-based selection from the finished search in ``run``; resumes from ``out`` after a kill.

    ``out`` defaults to ``run/select-<label>``. Returns the result also written to ``out/select_result.json``
    (the genotype, the settings, the search's own magnitude-rule genotype); every decision with its scores
    is in ``out/decisions.json``.
    """
    cfg = cfg or SelectConfig()
    out = Path(out) if out is not None else select_folder(run, cfg)
    return Selector(run, out, cfg, progress=progress).run()
