"""Train a genotype's final network from scratch and evaluate it: ``run_train(config, out_dir)``."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..data import (
    FolderDataset,
    TensorDataset,
    final_test_part,
    make_stream,
    part_size,
    selection_part,
    stratified_split,
    train_part,
)
from ..deploy import load_trained
from ..errors import ConfigError, RunError
from ..files import atomic_write_json, load_checkpoint, save_checkpoint
from ..nas.genotype import Genotype
from ..nas.network import Network, build_network, count_macs, count_params
from .artifacts import load_genotype
from .config import TrainConfig, memory_format_for
from .distributed import all_reduce_sums, barrier, wrap_ddp
from .engine import (
    check_finite,
    cosine_lr,
    epoch_stats,
    evaluate,
    linear_warmup_decay_lr,
    new_accumulator,
    sgd_impl,
    train_epoch,
)
from .formats import FILE_FORMAT, read_result, upgrade_model_state
from .inputs import check_data, load_data, make_augment
from .loop import RESUME_FREE, Context, check_world_size, run_task
from .metrics import MetricsLog

log = logging.getLogger(__name__)


def model_args(cfg: TrainConfig, ds: TensorDataset | FolderDataset) -> dict[str, Any]:
    return dict(
        num_classes=ds.num_classes,
        in_channels=ds.in_channels,
        init_channels=cfg.init_channels,
        layers=cfg.layers,
        auxiliary=cfg.auxiliary and cfg.auxiliary_weight > 0,
        stem=cfg.stem,
    )


def inference_state(
    model: Network, genotype: Genotype, cfg: TrainConfig, ds: TensorDataset | FolderDataset, **extra: Any
) -> dict[str, Any]:
    """What a deployed model needs: weights, genotype, how to rebuild and how to preprocess."""
    return {
        "kind": "train",
        "format": FILE_FORMAT,  # its "epoch" counts from 1
        "model": model.state_dict(),
        "genotype": genotype.to_dict(),
        "model_args": model_args(cfg, ds),
        "classes": ds.class_names(),
        "mean": list(ds.mean),
        "std": list(ds.std),
        "input_size": list(ds.image_size),
        "dataset": cfg.dataset,
        "config": asdict(cfg),
        **extra,
    }


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    if cfg.schedule == "linear":
        return linear_warmup_decay_lr(epoch, cfg.epochs, cfg.lr, cfg.lr_warmup_epochs)
    return cosine_lr(epoch + int(cfg.lr_lag), cfg.epochs, cfg.lr)


def run_train(
    cfg: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    extend: bool = False,
    genotype: Genotype | None = None,
    read_test: bool = True,
) -> dict[str, Any]:
    """Train from scratch; writes result.json, best.pt / last.pt, checkpoint.pt and metrics.jsonl in ``out``.

    ``read_test=False`` leaves the test split unread (``test_accuracy`` None) for runs that select on
    validation data only (a fidelity calibration); ``read_test_once`` reads it later, once.
    """
    genotype = genotype or load_genotype(cfg.genotype)
    if getattr(genotype, "cell", "darts") != "darts" and cfg.layers % 3:  # three stages of N cells
        raise ConfigError(
            f"the {genotype.cell} network has three stages of N cells, so layers must be a multiple of 3 "
            f"(NAS-Bench-201: 15), got {cfg.layers}: give layers, or resolve the settings for this cell "
            f"(TrainConfig.for_dataset(dataset, cell='{genotype.cell}'))"
        )
    if cfg.max_macs:
        from .sizing import fit_to_macs

        cfg = fit_to_macs(cfg, genotype)
    task = TrainTask(cfg, genotype, read_test=read_test)
    return run_task(task, cfg, out, resume=resume, overwrite=overwrite, progress=progress, extend=extend)


class TrainTask:
    """Training epochs of the final network; model selection on validation data, the test split read once."""

    kind, checkpoint_kind, final = "train", "train_checkpoint", "result.json"

    def __init__(self, cfg: TrainConfig, genotype: Genotype, *, read_test: bool = True):
        self.cfg, self.genotype, self.read_test = cfg, genotype, read_test

    def setup(self, ctx: Context, state: dict[str, Any] | None) -> int:
        cfg, info, device = self.cfg, ctx.info, ctx.device
        self.ctx = ctx
        ds = self.ds = load_data(cfg)
        check_data(ds, state, ctx.out)
        if cfg.batch_size % info.world_size:
            raise RunError(f"batch size {cfg.batch_size} must be divisible by the {info.world_size} processes")
        self.model = model = build_network(self.genotype, **model_args(cfg, ds)).to(device)
        model.set_memory_format(memory_format_for(cfg.memory_format, device))
        self.params, self.macs = count_params(model), count_macs(model, (ds.in_channels, *ds.image_size))
        self.forward = wrap_ddp(model, device, info)
        if cfg.compile:
            self.forward = torch.compile(self.forward)  # weights stay in `model`: checkpoints and evaluation unchanged
        self.opt = torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **sgd_impl(device)
        )
        self.scaler = torch.amp.GradScaler(device.type) if cfg.precision == "fp16" else None
        per_rank = cfg.batch_size // info.world_size
        self.fit_part, self.val_part = train_part(ds), None
        if cfg.holdout_images:  # model selection on the fixed hold-out set aside before the train subset
            self.val_part = selection_part(ds)
        elif cfg.val_fraction:  # model selection on held-out train images; the test split is read once, at the end
            self.fit_part, self.val_part = stratified_split(self.fit_part, cfg.val_fraction, what="validation split")
        self.train = make_stream(
            ds,
            self.fit_part,
            per_rank,
            train=True,
            seed=cfg.seed,
            device=device,
            rank=info.rank,
            world_size=info.world_size,
            augment=make_augment(cfg, ds, cfg.cutout),
            workers=cfg.workers,
        )
        if part_size(final_test_part(ds)) == 0:  # counted, not read: found now rather than after every epoch
            raise RunError(f"the {ds.name} test split is empty: nothing to report the trained model on")
        self.eval_batch = max(per_rank, 256)
        self.val = (
            None
            if self.val_part is None
            else make_stream(ds, self.val_part, self.eval_batch, train=False, device=device, workers=cfg.workers)
        )
        start_epoch, self.best, self.acc = 0, {"top1": -1.0}, new_accumulator(device)
        if state is not None:
            if state.get("genotype", self.genotype.to_dict()) != self.genotype.to_dict():
                raise RunError(
                    f"{ctx.out / 'checkpoint.pt'} trains another genotype than the one given: resume without "
                    "--genotype (the run's own is used) or start a new --out"
                )
            model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            check_world_size(state, info.world_size)
            ctx.load_stream(self.train, state["train_stream"])
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            start_epoch, self.best = int(state["epoch"]), dict(state["best"])
            self.acc = {k: v.to(device) for k, v in state["acc"].items()}
        if info.is_main:
            atomic_write_json(ctx.out / "genotype.json", self.genotype.to_dict())
        return start_epoch

    def config_record(self) -> dict[str, Any]:
        return {"kind": "train", **asdict(self.cfg), "genotype_resolved": self.genotype.to_dict()}

    def steps(self) -> tuple[int, int]:
        return len(self.train), self.train.remaining()

    def run_epoch(self, epoch: int, after_step: Any) -> bool:
        cfg = self.cfg
        self.lr = lr_at(cfg, epoch)
        for g in self.opt.param_groups:
            g["lr"] = self.lr
        self.model.set_drop_path(cfg.drop_path * epoch / cfg.epochs)
        return train_epoch(
            self.model,
            self.forward,
            self.opt,
            self.train,
            grad_clip=cfg.grad_clip,
            auxiliary_weight=cfg.auxiliary_weight,
            label_smoothing=cfg.label_smoothing,
            acc=self.acc,
            after_step=after_step,
            precision=cfg.precision,
            scaler=self.scaler,
        )

    def end_epoch(self, epoch: int, seconds: float, metrics: MetricsLog, *, cpu_seconds: float) -> dict[str, Any]:
        info = self.ctx.info
        stats = epoch_stats(all_reduce_sums(self.acc, info))
        check_finite(stats, "training", checkpoint=(self.ctx.out / "checkpoint.pt").is_file())
        record = {
            "epoch": epoch + 1,  # files and console count epochs from 1
            "lr": self.lr,
            "drop_path": self.model.drop_path_prob,
            "train_loss": stats["loss"],
            "train_acc": stats["accuracy"],
            "epoch_seconds": seconds,
            "epoch_cpu_seconds": cpu_seconds,
            "step_seconds": seconds / max(stats["steps"], 1),
        }
        if self.val is not None:
            val_stats = evaluate(self.model, self.val)
            record.update(val_loss=val_stats["loss"], val_acc=val_stats["top1"], val_top5=val_stats["top5"])
        metrics.write(record)
        if info.is_main and self.val is not None and val_stats["top1"] > self.best["top1"]:
            self.best = {
                "top1": val_stats["top1"],
                "top5": val_stats["top5"],
                "loss": val_stats["loss"],
                "epoch": epoch + 1,
            }
            state = inference_state(self.model, self.genotype, self.cfg, self.ds, epoch=epoch + 1, val=val_stats)
            save_checkpoint(self.ctx.out / "best.pt", state)
        self.acc = new_accumulator(self.ctx.device)
        return record

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "train_stream": self.ctx.stream_state(self.train),
            "best": self.best,
            "genotype": self.genotype.to_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "acc": {k: v.detach().cpu() for k, v in self.acc.items()},
        }

    def stop_reason(self) -> str | None:
        return None

    def finish(self, *, stopped: bool, seconds: float, cpu_seconds: float | None) -> dict[str, Any]:
        cfg, info, out, model, ds = self.cfg, self.ctx.info, self.ctx.out, self.model, self.ds
        result: dict[str, Any] = {"stopped": stopped, "out": str(out), "is_main": info.is_main}
        if stopped:
            return result
        if info.is_main:
            save_checkpoint(out / "last.pt", inference_state(model, self.genotype, cfg, ds, epoch=cfg.epochs))
        barrier(info)
        # The shipped model: the epoch with the best validation accuracy, or the last epoch without a
        # validation split (as the reference code ships). Its test accuracy is the one figure reported.
        shipped = out / ("best.pt" if self.val is not None else "last.pt")
        earlier = _earlier_result(out, cfg.epochs)
        result = {
            "format": FILE_FORMAT,  # epochs counted from 1
            "test_accuracy": None,
            "test_top5": None,
            "test_loss": None,
            "test_images": 0,
            "selected_by": ("holdout" if cfg.holdout_images else "val") if self.val is not None else "last_epoch",
            "selected_epoch": int(self.best.get("epoch", cfg.epochs)),
            "val_accuracy": self.best["top1"] if self.val is not None else None,
            "val_images": 0 if self.val_part is None else part_size(self.val_part),
            "train_images": part_size(self.fit_part),
            "params": self.params,
            "macs": self.macs,
            "epochs": cfg.epochs,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "dataset": cfg.dataset,
            "num_classes": ds.num_classes,
            "classes": list(ds.class_names()),
            "input": [ds.in_channels, *ds.image_size],
            "genotype_from": cfg.genotype if len(cfg.genotype) < 300 else "(text)",
            "genotype": self.genotype.to_dict(),
            "shipped": shipped.name,
            "out": str(out),
            "stopped": False,
            "is_main": info.is_main,
            "world_size": info.world_size,
        }
        if earlier is not None:
            result["extended_from"] = earlier
            if info.is_main and earlier.get("test_accuracy") is not None:
                log.warning(
                    "warning: the test split was read for this run's %d-epoch model (test accuracy %.4f): the figure "
                    "of the extended run is a second look at it; compare runs on validation accuracy",
                    earlier["epochs"],
                    earlier["test_accuracy"],
                )
        if info.is_main:
            for warning in selection_warnings(result):
                log.warning("warning: %s", warning)
        if not self.read_test:  # validation only: the test split stays unread until read_test_once
            if info.is_main:
                atomic_write_json(out / "result.json", result)
            barrier(info)
            return result
        if self.val is not None:
            model.load_state_dict(load_checkpoint(shipped, self.ctx.device)["model"])
        _read_test(model, ds, shipped, result, self.eval_batch, self.ctx.device, cfg.workers, record=info.is_main)
        if info.is_main:
            for warning in chance_warnings(result):
                log.warning("warning: %s", warning)
        barrier(info)
        return result


def _earlier_result(out: Path, epochs: int) -> dict[str, Any] | None:
    """What a run reported before it was extended to ``epochs`` (None for a run that was not)."""
    try:
        old = read_result(out / "result.json")
    except RunError:
        return None
    if not isinstance(old.get("epochs"), int) or old["epochs"] >= epochs:
        return None
    return {k: old.get(k) for k in ("epochs", "test_accuracy", "selected_epoch", "val_accuracy")}


MIN_VAL_PER_CLASS = 10  # fewer validation images a class than this cannot tell epochs apart


def selection_warnings(result: dict[str, Any]) -> list[str]:
    """Why the shipped epoch may be chosen by noise: a validation split too small to select by."""
    k, n = int(result.get("num_classes") or 0), int(result.get("val_images") or 0)
    if result.get("selected_by") == "val" and k and n < MIN_VAL_PER_CLASS * k:
        return [
            f"the validation split has {n} images for {k} classes (fewer than {MIN_VAL_PER_CLASS} a class): too few "
            "to choose the shipped epoch by; use more images or a larger --val-fraction"
        ]
    return []


def chance_warnings(result: dict[str, Any]) -> list[str]:
    """A shipped model within noise of guessing: two standard errors of the chance rate 1/k."""
    k, n, acc = int(result.get("num_classes") or 0), int(result.get("test_images") or 0), result.get("test_accuracy")
    if not k or not n or acc is None:
        return []
    chance = 1.0 / k
    if acc - chance <= 2 * math.sqrt(chance * (1 - chance) / n):
        return [
            f"the shipped model is at chance level: test accuracy {acc:.4f} against 1/{k} = {chance:.4f} on {n} "
            "images; it has not learned (more epochs, more images, or a lower lr)"
        ]
    return []


def _read_test(
    model: torch.nn.Module,
    ds: Any,
    shipped: Path,
    result: dict[str, Any],
    batch: int,
    device: torch.device,
    workers: int,
    *,
    record: bool = True,
) -> None:
    """The one reading of the test split: the shipped model's figures into ``result``, and with ``record``
    (the main process) into the shipped checkpoint and the result.json beside it."""
    stats = evaluate(model, make_stream(ds, final_test_part(ds), batch, train=False, device=device, workers=workers))
    result.update(
        test_accuracy=stats["top1"],
        test_top5=stats["top5"],
        test_loss=stats["loss"],
        test_images=stats["n"],
        test_per_class=stats.get("per_class"),
    )
    if record:
        state = upgrade_model_state(load_checkpoint(shipped, "cpu"))  # an extended older run's best.pt too
        state["test"] = stats
        save_checkpoint(shipped, state)
        atomic_write_json(shipped.parent / "result.json", result)


def read_test_once(cfg: TrainConfig, out: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Evaluate a finished run's shipped model on the test split, if no one has, and record it in result.json.

    The run was trained with ``read_test=False`` (its model already chosen on validation data); this is
    the one reading of the test split for its reported figure. A run that has its figure is returned as is.
    """
    out = Path(out)
    result = read_result(out / "result.json")
    if result.get("test_accuracy") is not None:
        return result
    shipped = out / str(result.get("shipped", "best.pt"))
    if shipped.parent != out or shipped.name not in ("best.pt", "last.pt"):
        raise RunError(f"{out / 'result.json'} names {result.get('shipped')!r} as its model: restore the file")
    model, _ = load_trained(shipped, device)
    model.set_memory_format(memory_format_for(cfg.memory_format, torch.device(device)))
    _read_test(model, load_data(cfg), shipped, result, 256, torch.device(device), cfg.workers)
    return result


__all__ = ["RESUME_FREE", "read_test_once", "run_train"]
