"""One run skeleton for every kind of run: folder, lock, resume, epochs, signals, checkpoints, metrics.

A search and a training differ in what one epoch does, not in how epochs, checkpoints, signals
and metrics are handled (nanoGPT's one loop). A ``Task`` says what an epoch does; ``run_task``
owns everything around it, in one order that makes a resumed run end bit for bit where an
uninterrupted one does on CPU: seed, build, load the checkpoint, restore the RNG, then epochs.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

from ..errors import RunError
from ..files import atomic_write_json, load_checkpoint, require_keys, save_checkpoint
from .distributed import DistInfo, barrier, init_distributed, local_device, shutdown
from .engine import epoch_line
from .environment import (
    configure_device,
    pick_device,
    rng_state,
    seed_everything,
    set_rng_state,
    threads_for_load,
    warn_if_busy,
    write_environment,
)
from .formats import ADDED_SETTINGS, FILE_FORMAT, epoch_part, is_old_format, upgrade_epochs
from .inputs import data_fingerprint
from .metrics import MetricsLog, RunClock
from .rundir import RunDir, RunLock
from .signals import GracefulStop

log = logging.getLogger(__name__)

# Settings that may change between a run and its resumption without changing the result's meaning.
RESUME_FREE = {
    "device",
    "threads",
    "data",
    "workers",
    "download",
    "compile",
    "genotype",
    "memory_format",
}  # genotype: the cell is checked


def check_world_size(state: dict[str, Any], world_size: int) -> None:
    """Stream positions are saved per process: a run resumes only with as many processes as it had."""
    saved = state["train_stream"]
    had = len(saved) if isinstance(saved, list) else 1
    if had != world_size:
        raise RunError(
            f"the checkpoint was written by {had} process(es) but {world_size} are resuming it: resume with "
            f"--nproc_per_node={had} (torchrun) or start a new --out"
        )


def plain(value: Any) -> Any:
    """A setting as config.json holds it (tuples are lists there), so saved and asked values compare."""
    return list(value) if isinstance(value, tuple) else value


def check_resume_config(saved: dict[str, Any], now: dict[str, Any], *, extend: bool = False) -> None:
    """A resumed run must ask for the settings it began with; ``extend``: only more epochs may be asked for."""
    saved = {**{k: v for k, v in ADDED_SETTINGS.items() if k in now}, **saved}
    if extend:
        before = saved.get("epochs")
        if not isinstance(before, int) or now.get("epochs", 0) <= before:
            raise RunError(
                f"--extend needs --epochs above the run's {before}: say how many epochs the run should have in all"
            )
        saved = {**saved, "epochs": now["epochs"]}
    if saved.get("threads", now.get("threads")) != now.get("threads"):
        log.warning(
            "resuming with threads=%s (the run began with %s): the result will no longer match an "
            "uninterrupted run bit for bit",
            now.get("threads"),
            saved.get("threads"),
        )
    for key, value in now.items():
        if key in RESUME_FREE:
            continue
        if key in saved and plain(saved[key]) != plain(value):
            more = " (or add --extend to take it on to more epochs)" if key == "epochs" and value > saved[key] else ""
            raise RunError(
                f"checkpoint was written with {key}={saved[key]!r} but this run asks for {value!r}: "
                f"resume with the original settings or start a new --out{more}"
            )


class Context:
    """What a task gets from the runner: where it runs, on which device, as which process."""

    def __init__(self, out: Path, device: torch.device, info: DistInfo):
        self.out, self.device, self.info = out, device, info
        self.old_format = False  # resuming a checkpoint written before epochs counted from 1 in files

    def stream_state(self, stream: Any) -> Any:
        """A stream's position; under torchrun every rank's, gathered on rank 0 (a list)."""
        state = stream.state_dict()
        if not self.info.enabled:
            return state
        gathered: list[Any] = [None] * self.info.world_size
        torch.distributed.all_gather_object(gathered, state)
        return gathered

    def load_stream(self, stream: Any, saved: Any) -> None:
        stream.load_state_dict(saved[self.info.rank] if self.info.enabled else saved)

    def gather(self, obj: Any) -> Any:
        """Every rank's ``obj`` as a list on rank 0 under torchrun; ``obj`` itself in one process."""
        if not self.info.enabled:
            return obj
        gathered: list[Any] = [None] * self.info.world_size
        torch.distributed.all_gather_object(gathered, obj)
        return gathered

    def own(self, saved: Any) -> Any:
        """This rank's entry of what ``gather`` saved (a single process saved the object itself)."""
        return saved[self.info.rank] if isinstance(saved, list) else saved


class Task(Protocol):
    """One kind of run. ``setup`` builds everything; the runner calls the rest once per epoch.

    Optional, looked up when present: ``ds`` (the dataset, fingerprinted into each checkpoint),
    ``epoch_cost(e)`` (epoch e's relative cost, for the ETA) and ``epoch_line(record, epoch, epochs)`` (the
    console line of a task whose epochs are not training epochs, such as a selection's rounds).
    """

    kind: str  # "search", "train": names the progress bar, the console line and config.json
    checkpoint_kind: str  # the "kind" stored in checkpoint.pt (resuming another kind is refused)
    final: str  # the file that marks a finished run

    def setup(self, ctx: Context, state: dict[str, Any] | None) -> int: ...  # returns the first epoch

    def config_record(self) -> dict[str, Any]: ...

    def steps(self) -> tuple[int, int]: ...  # (steps an epoch, steps left in the current one)

    def run_epoch(self, epoch: int, after_step: Callable[[int], bool]) -> bool: ...  # True: interrupted

    def end_epoch(self, epoch: int, seconds: float, metrics: MetricsLog, *, cpu_seconds: float) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...  # task part of checkpoint.pt (streams via ctx)

    def stop_reason(self) -> str | None: ...  # a task-level reason to end before the last epoch

    def finish(self, *, stopped: bool, seconds: float, cpu_seconds: float | None) -> dict[str, Any]: ...


def run_task(
    task: Task,
    cfg: Any,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    extend: bool = False,
) -> dict[str, Any]:
    """Run ``task`` in ``out`` (single process or under torchrun) and return its result.

    ``extend`` (with ``resume``): the run goes on to ``cfg.epochs``, more than it was planned for. Its
    schedules (cosine lr, drop path, warm-up share) follow the longer run from the epoch it had reached, so
    the lr rises again there: an extended run is not the run that had been planned that long.
    """
    if extend and not resume:
        raise RunError("--extend continues a run: add --resume (and --epochs, the new total)")
    out = Path(out)
    device = pick_device(cfg.device)
    configure_device(device, cfg.deterministic)
    info = init_distributed(device)
    device = local_device(device, info)
    try:
        with RunLock(out, enabled=info.is_main):
            return _run(task, cfg, Context(out, device, info), resume, overwrite, progress, extend)
    finally:
        shutdown(info)


def _run(
    task: Task,
    cfg: Any,
    ctx: Context,
    resume: bool,
    overwrite: bool,
    progress: bool,
    extend: bool = False,
) -> dict[str, Any]:
    out, info = ctx.out, ctx.info
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if info.is_main:
        RunDir(out, kind=task.kind, resume=resume, overwrite=overwrite, final=task.final)
    barrier(info)
    saved = load_checkpoint(out / "checkpoint.pt") if resume else None
    ctx.old_format = is_old_format(saved)  # written before epochs counted from 1 in files: its logs are renumbered
    state = upgrade_epochs(saved) if saved is not None else None
    if state is not None:
        if state.get("kind") != task.checkpoint_kind:
            raise RunError(f"{out / 'checkpoint.pt'} is a {state.get('kind')} checkpoint, not a {task.kind} one")
        require_keys(state, ("config", "rng", "epoch", "model", "train_stream"), out / "checkpoint.pt")
        if not isinstance(state["config"], dict):
            raise RunError(f"checkpoint {out / 'checkpoint.pt'} holds no readable config: it is damaged")
        check_resume_config(state["config"], asdict(cfg), extend=extend)
        if extend:
            log.info("extending %s from %s to %d epochs", out, state["config"].get("epochs"), cfg.epochs)
    seed_everything(cfg.seed, cfg.deterministic)
    start_epoch = task.setup(ctx, state)
    data = data_fingerprint(task.ds) if hasattr(task, "ds") else None
    if info.is_main:  # after every check of the input, so a refused start stays one line on stderr
        if not cfg.threads and "OMP_NUM_THREADS" not in os.environ:
            threads_for_load(ctx.device)
        else:
            warn_if_busy(ctx.device)
    if state is not None:
        set_rng_state(ctx.own(state["rng"]))
        if start_epoch >= cfg.epochs:
            log.info(
                "%s holds a finished run (%d of %d epochs): nothing to train (--extend --epochs N goes on to N)",
                out,
                start_epoch,
                cfg.epochs,
            )
        else:
            log.info("resumed from %s at epoch %d", out / "checkpoint.pt", start_epoch + 1)
    if info.is_main:
        atomic_write_json(out / "config.json", task.config_record())
        write_environment(out, world_size=info.world_size, device=str(ctx.device))
    metrics = MetricsLog(
        out / "metrics.jsonl",
        resume_epoch=start_epoch if state else None,
        enabled=info.is_main,
        old_format=ctx.old_format,
    )
    clock = RunClock(state)
    # The time an epoch that a run stopped inside had already taken: its figures count on from there.
    part_wall, part_cpu = epoch_part(state)

    def checkpoint(epoch: int, mid_epoch: bool, epoch_part: dict[str, float] | None = None) -> None:
        task_state = task.state_dict()  # every rank takes part: it gathers stream positions
        rng = ctx.gather(rng_state())  # each rank's own generators (CPU and its device)
        if info.is_main:
            # "epoch" counts the finished epochs; mid_epoch: part of the next one is done too
            common = {"kind": task.checkpoint_kind, "format": FILE_FORMAT, "config": asdict(cfg), "data": data}
            common.update(epoch=epoch, mid_epoch=mid_epoch)
            if epoch_part is not None:
                common["epoch_part"] = epoch_part
            save_checkpoint(out / "checkpoint.pt", {**common, **task_state, "rng": rng, **clock.state()})

    stopped = False
    with GracefulStop() as stop:
        for epoch in range(start_epoch, cfg.epochs if task.stop_reason() is None else start_epoch):
            total, left = task.steps()
            bar = tqdm(
                total=total,
                initial=total - left,
                desc=f"{task.kind} {epoch + 1}/{cfg.epochs}",
                disable=not (progress and info.is_main and sys.stderr.isatty()),  # no bars written into log files
                leave=False,
                dynamic_ncols=True,
            )

            def after_step(_: int, bar: tqdm = bar) -> bool:
                bar.update(1)
                return stop.requested

            t_epoch, c_epoch = time.time() - part_wall, time.process_time() - part_cpu
            part_wall = part_cpu = 0.0  # only the first epoch after a resume was started before
            interrupted = task.run_epoch(epoch, after_step)
            bar.close()
            if interrupted:
                done = {"seconds": time.time() - t_epoch, "cpu_seconds": time.process_time() - c_epoch}
                checkpoint(epoch, mid_epoch=True, epoch_part=done)
                stopped = True
                break
            record = task.end_epoch(epoch, time.time() - t_epoch, metrics, cpu_seconds=time.process_time() - c_epoch)
            if info.is_main:
                if hasattr(task, "epoch_line"):  # a task whose epochs are not training epochs (a selection's rounds)
                    log.info(task.epoch_line(record, epoch, cfg.epochs))
                else:
                    cost = getattr(task, "epoch_cost", None)
                    log.info(epoch_line(task.kind, record, epoch, cfg.epochs, clock.wall(), start_epoch, cost))
            checkpoint(epoch + 1, mid_epoch=False)
            reason = task.stop_reason()
            if reason is not None:
                log.info("early stop after epoch %d: %s", epoch + 1, reason)
                break
            if stop.requested:
                stopped = epoch + 1 < cfg.epochs
                if stopped:
                    break
    metrics.close()
    return task.finish(stopped=stopped, seconds=clock.wall(), cpu_seconds=clock.cpu())
