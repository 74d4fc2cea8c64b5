"""Train a genotype's final network from scratch and evaluate it: ``run_train(config, out_dir)``."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from .config import TrainConfig
from .data import FolderDataset, TensorDataset, holdout_part, make_stream, part_size, stratified_split, train_part
from .distributed import DistInfo, all_reduce_sums, barrier, init_distributed, local_device, shutdown, wrap_ddp
from .engine import (
    check_finite,
    cosine_lr,
    epoch_line,
    evaluate,
    linear_warmup_decay_lr,
    new_accumulator,
    summarise,
    train_epoch,
)
from .genotype import Genotype, load_genotype
from .network import Network, build_network, count_macs, count_params
from .runs import (
    GracefulStop,
    MetricsLog,
    RunDir,
    RunError,
    RunLock,
    atomic_write_json,
    environment,
    load_checkpoint,
    pick_device,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    warn_if_busy,
)
from .search import RESUME_FREE, check_resume_config, check_world_size, load_data, make_augment

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
    stop_after_epochs: int | None = None,
    genotype: Genotype | None = None,
) -> dict[str, Any]:
    """Train from scratch; writes result.json, best.pt, checkpoint.pt and metrics.jsonl in ``out``."""
    genotype = genotype or load_genotype(cfg.genotype)
    device = pick_device(cfg.device)
    info = init_distributed(device)
    device = local_device(device, info)
    try:
        with RunLock(out, enabled=info.is_main):
            return _train(cfg, genotype, Path(out), info, device, resume, overwrite, progress, stop_after_epochs)
    finally:
        shutdown(info)


def _train(
    cfg: TrainConfig,
    genotype: Genotype,
    out: Path,
    info: DistInfo,
    device: torch.device,
    resume: bool,
    overwrite: bool,
    progress: bool,
    stop_after_epochs: int | None,
) -> dict[str, Any]:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if info.is_main:
        warn_if_busy(device)
    if info.is_main:
        RunDir(out, kind="train", resume=resume, overwrite=overwrite, final="result.json")
    barrier(info)
    state = load_checkpoint(out / "checkpoint.pt") if resume else None
    if state is not None:
        if state.get("kind") != "train_checkpoint":
            raise RunError(f"{out / 'checkpoint.pt'} is not a training checkpoint")
        check_resume_config(state["config"], asdict(cfg))
    seed_everything(cfg.seed, cfg.deterministic)
    ds = load_data(cfg)
    if cfg.batch_size % info.world_size:
        raise RunError(f"batch size {cfg.batch_size} must be divisible by the {info.world_size} processes")
    model = build_network(genotype, **model_args(cfg, ds)).to(device)
    params, macs = count_params(model), count_macs(model, (ds.in_channels, *ds.image_size))
    forward = wrap_ddp(model, device, info)
    if cfg.compile:
        forward = torch.compile(forward)  # weights stay in `model`: checkpoints and evaluation are unchanged
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True
    )
    scaler = torch.amp.GradScaler(device.type) if cfg.precision == "fp16" else None
    per_rank = cfg.batch_size // info.world_size
    fit_part, val_part = train_part(ds), None
    if cfg.val_fraction:  # model selection on held-out train images; the test split is read once, at the end
        fit_part, val_part = stratified_split(fit_part, cfg.val_fraction, what="validation split")
    train = make_stream(
        ds,
        fit_part,
        per_rank,
        train=True,
        seed=cfg.seed,
        device=device,
        rank=info.rank,
        world_size=info.world_size,
        augment=make_augment(cfg, ds, cfg.cutout),
        workers=cfg.workers,
    )
    eval_batch = max(per_rank, 256)
    val = (
        None
        if val_part is None
        else make_stream(ds, val_part, eval_batch, train=False, device=device, workers=cfg.workers)
    )
    start_epoch, best, acc = 0, {"top1": -1.0}, new_accumulator(device)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        check_world_size(state, info.world_size)
        train.load_state_dict(state["train_stream"][info.rank] if info.enabled else state["train_stream"])
        set_rng_state(state["rng"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, best = int(state["epoch"]), dict(state["best"])
        acc = {k: v.to(device) for k, v in state["acc"].items()}
    if info.is_main:
        atomic_write_json(
            out / "config.json", {"kind": "train", **asdict(cfg), "genotype_resolved": genotype.to_dict()}
        )
        atomic_write_json(
            out / "environment.json", {**environment(), "world_size": info.world_size, "device": str(device)}
        )
        atomic_write_json(out / "genotype.json", genotype.to_dict())
    metrics = MetricsLog(out / "metrics.jsonl", resume_epoch=start_epoch if state else None, enabled=info.is_main)

    def checkpoint(epoch: int) -> None:
        stream = train.state_dict()
        if info.enabled:
            gathered: list[Any] = [None] * info.world_size
            torch.distributed.all_gather_object(gathered, stream)
            stream = gathered
        if info.is_main:
            save_checkpoint(
                out / "checkpoint.pt",
                {
                    "kind": "train_checkpoint",
                    "config": asdict(cfg),
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "train_stream": stream,
                    "rng": rng_state(),
                    "best": best,
                    "scaler": None if scaler is None else scaler.state_dict(),
                    "acc": {k: v.detach().cpu() for k, v in acc.items()},
                    "seconds": time.time() - t0,
                },
            )

    t0 = time.time() - (state or {}).get("seconds", 0.0)
    stopped = False
    with GracefulStop() as stop:
        for epoch in range(start_epoch, cfg.epochs):
            lr = lr_at(cfg, epoch)
            for g in opt.param_groups:
                g["lr"] = lr
            model.set_drop_path(cfg.drop_path * epoch / cfg.epochs)
            bar = tqdm(
                total=len(train),
                initial=len(train) - train.remaining(),
                desc=f"train {epoch + 1}/{cfg.epochs}",
                disable=not (progress and info.is_main),
                leave=False,
                dynamic_ncols=True,
            )

            def after_step(_: int, bar: tqdm = bar) -> bool:
                bar.update(1)
                return stop.requested

            t_epoch = time.time()
            interrupted = train_epoch(
                model,
                forward,
                opt,
                train,
                grad_clip=cfg.grad_clip,
                auxiliary_weight=cfg.auxiliary_weight,
                label_smoothing=cfg.label_smoothing,
                acc=acc,
                after_step=after_step,
                precision=cfg.precision,
                scaler=scaler,
            )
            bar.close()
            if interrupted:
                checkpoint(epoch)
                stopped = True
                break
            stats = summarise(all_reduce_sums(acc, info))
            check_finite(stats, "training")
            record = {
                "epoch": epoch,
                "lr": lr,
                "drop_path": model.drop_path_prob,
                "train_loss": stats["loss"],
                "train_acc": stats["accuracy"],
                "epoch_seconds": time.time() - t_epoch,
                "step_seconds": (time.time() - t_epoch) / max(stats["steps"], 1),
            }
            if val is not None:
                val_stats = evaluate(model, val)
                record.update(val_loss=val_stats["loss"], val_acc=val_stats["top1"], val_top5=val_stats["top5"])
            metrics.write(record)
            if info.is_main:
                log.info(epoch_line("train", record, epoch, cfg.epochs, time.time() - t0, start_epoch))
                if val is not None and val_stats["top1"] > best["top1"]:
                    best = {
                        "top1": val_stats["top1"],
                        "top5": val_stats["top5"],
                        "loss": val_stats["loss"],
                        "epoch": epoch,
                    }
                    save_checkpoint(
                        out / "best.pt", inference_state(model, genotype, cfg, ds, epoch=epoch, val=val_stats)
                    )
            acc = new_accumulator(device)
            checkpoint(epoch + 1)
            if stop.requested or (stop_after_epochs is not None and epoch + 1 - start_epoch >= stop_after_epochs):
                stopped = epoch + 1 < cfg.epochs
                if stopped:
                    break
    metrics.close()
    result: dict[str, Any] = {"stopped": stopped, "out": str(out), "is_main": info.is_main}
    if stopped:
        return result
    if info.is_main:
        save_checkpoint(out / "last.pt", inference_state(model, genotype, cfg, ds, epoch=cfg.epochs - 1))
    barrier(info)
    # The shipped model: the epoch with the best validation accuracy, or the last epoch without a
    # validation split (as the reference code ships). Its test accuracy is the one figure reported.
    shipped = out / ("best.pt" if val is not None else "last.pt")
    if val is not None:
        model.load_state_dict(load_checkpoint(shipped, device)["model"])
    test = make_stream(ds, holdout_part(ds), eval_batch, train=False, device=device, workers=cfg.workers)
    test_stats = evaluate(model, test)
    result = {
        "test_accuracy": test_stats["top1"],
        "test_top5": test_stats["top5"],
        "test_loss": test_stats["loss"],
        "selected_by": "val" if val is not None else "last_epoch",
        "selected_epoch": int(best.get("epoch", cfg.epochs - 1)),
        "val_accuracy": best["top1"] if val is not None else None,
        "val_images": 0 if val_part is None else part_size(val_part),
        "train_images": part_size(fit_part),
        "params": params,
        "macs": macs,
        "epochs": cfg.epochs,
        "seconds": time.time() - t0,
        "dataset": cfg.dataset,
        "genotype": genotype.to_dict(),
        "test_images": test_stats["n"],
        "shipped": shipped.name,
        "out": str(out),
        "stopped": False,
        "is_main": info.is_main,
        "world_size": info.world_size,
    }
    if info.is_main:
        state = load_checkpoint(shipped, "cpu")
        state["test"] = test_stats
        save_checkpoint(shipped, state)
        atomic_write_json(out / "result.json", result)
    barrier(info)
    return result


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a trained network from a run folder or checkpoint, in eval mode, ready for inference."""
    state = load_checkpoint(path, map_location)
    if state.get("kind") != "train":
        raise RunError(
            f"{path} holds a {state.get('kind')} checkpoint; a trained network (best.pt / last.pt) is needed"
        )
    args = dict(state["model_args"])
    args["auxiliary"] = False
    model = build_network(Genotype.from_dict(state["genotype"]), **args)
    weights = {k: v for k, v in state["model"].items() if not k.startswith("auxiliary_head")}
    model.load_state_dict(weights)
    model.eval()
    model.meta = {k: state[k] for k in ("classes", "mean", "std", "input_size", "genotype", "dataset")}  # type: ignore[attr-defined]
    return model


__all__ = ["RESUME_FREE", "load_model", "run_train"]
