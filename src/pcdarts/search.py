"""The PC-DARTS search as a library call: ``run_search(config, out_dir)``."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .architect import Architect
from .config import SearchConfig
from .data import Augment, FolderDataset, TensorDataset, get_dataset, limit_train, make_stream, part_size, search_parts
from .distributed import (
    DistInfo,
    all_reduce_sums,
    barrier,
    check_agreement,
    init_distributed,
    local_device,
    shutdown,
    wrap_ddp,
)
from .engine import check_finite, cosine_lr, epoch_line, evaluate, new_accumulator, search_epoch, summarise
from .genotype import Genotype, param_free_count
from .remedies import beta_decay_weight, early_stop_reason
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
from .supernet import SearchNetwork

log = logging.getLogger(__name__)

# Settings that may change between a run and its resumption without changing the result's meaning.
RESUME_FREE = {"device", "threads", "data", "workers", "download", "compile"}


def load_data(cfg: Any) -> TensorDataset | FolderDataset:
    kwargs: dict[str, Any] = {"download": cfg.download}
    if cfg.image_size:
        kwargs["image_size"] = cfg.image_size
    if cfg.data:
        kwargs["data"] = cfg.data
    if getattr(cfg, "subset", None):
        kwargs["subset"] = cfg.subset
    return limit_train(get_dataset(cfg.dataset, **kwargs), cfg.train_images)


def make_augment(cfg: Any, ds: TensorDataset | FolderDataset, cutout: int) -> Augment:
    pad = getattr(ds, "crop_padding", 4) if cfg.crop_padding < 0 else cfg.crop_padding
    flip = getattr(ds, "flip", True) if cfg.flip is None else cfg.flip
    return Augment(crop_padding=pad, flip=flip, cutout=cutout)


def build_supernet(cfg: SearchConfig, ds: TensorDataset | FolderDataset) -> SearchNetwork:
    return SearchNetwork(
        num_classes=ds.num_classes,
        in_channels=ds.in_channels,
        init_channels=cfg.init_channels,
        layers=cfg.layers,
        k=cfg.k,
        edge_norm=cfg.edge_norm,
        partial_mode=cfg.partial_mode,
        stem=cfg.stem,
    )


def check_world_size(state: dict[str, Any], world_size: int) -> None:
    """Stream positions are saved per process: a run resumes only with as many processes as it had."""
    saved = state["train_stream"]
    had = len(saved) if isinstance(saved, list) else 1
    if had != world_size:
        raise RunError(
            f"the checkpoint was written by {had} process(es) but {world_size} are resuming it: resume with "
            f"--nproc_per_node={had} (torchrun) or start a new --out"
        )


def check_resume_config(saved: dict[str, Any], now: dict[str, Any]) -> None:
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
        if key in saved and saved[key] != value:
            raise RunError(
                f"checkpoint was written with {key}={saved[key]!r} but this run asks for {value!r}: "
                "resume with the original settings or start a new --out"
            )


def collapse_count(genotype: Genotype) -> dict[str, int]:
    """Parameter-free ops in the derived cells: a rising count warns of skip-connection collapse."""
    return {
        "param_free_normal": param_free_count(genotype.normal),
        "param_free_reduce": param_free_count(genotype.reduce),
    }


def search_lr(cfg: SearchConfig, epoch: int) -> float:
    """The weight lr of an epoch: cosine to lr_min, after an optional linear warm-up (official ImageNet search).

    ``lr_lag`` reproduces the official code, which steps its scheduler before each epoch, so
    epoch e runs at the cosine value of e + 1 and the last epoch at lr_min.
    """
    if epoch < cfg.lr_warmup_epochs:
        return cfg.lr * (epoch + 1) / cfg.lr_warmup_epochs
    return cosine_lr(epoch + int(cfg.lr_lag), cfg.epochs, cfg.lr, cfg.lr_min)


def early_stop(cfg: SearchConfig, history: list[dict[str, Any]]) -> str | None:
    """DARTS+ early stopping over the arch epochs of ``history`` (None: go on)."""
    if not (cfg.early_stop_param_free or cfg.early_stop_stable):
        return None
    arch = [Genotype.from_dict(h["genotype"]) for h in history if h["epoch"] >= cfg.warmup_epochs]
    return early_stop_reason(arch, param_free=cfg.early_stop_param_free, stable=cfg.early_stop_stable)


def run_search(
    cfg: SearchConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_after_epochs: int | None = None,
) -> dict[str, Any]:
    """Search a cell; writes genotype.json, arch_history.jsonl, metrics.jsonl and checkpoint.pt in ``out``.

    ``stop_after_epochs`` ends the call early (with a checkpoint), as a signal would.
    """
    device = pick_device(cfg.device)
    info = init_distributed(device)
    device = local_device(device, info)
    try:
        with RunLock(out, enabled=info.is_main):
            return _search(cfg, Path(out), info, device, resume, overwrite, progress, stop_after_epochs)
    finally:
        shutdown(info)


def _search(
    cfg: SearchConfig,
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
        RunDir(out, kind="search", resume=resume, overwrite=overwrite, final="genotype.json")
    barrier(info)
    state = load_checkpoint(out / "checkpoint.pt") if resume else None
    if state is not None:
        if state.get("kind") != "search":
            raise RunError(f"{out / 'checkpoint.pt'} is a {state.get('kind')} checkpoint, not a search one")
        check_resume_config(state["config"], asdict(cfg))
    seed_everything(cfg.seed, cfg.deterministic)
    ds = load_data(cfg)
    if cfg.batch_size % info.world_size:
        raise RunError(f"batch size {cfg.batch_size} must be divisible by the {info.world_size} processes")
    w_part, a_part = search_parts(ds, cfg.train_portion)
    if min(part_size(w_part), part_size(a_part)) < max(info.world_size, ds.num_classes):
        n = part_size(w_part) + part_size(a_part)
        raise RunError(
            f"train portion {cfg.train_portion} of {n} images leaves {part_size(w_part)} for the weights and "
            f"{part_size(a_part)} for alpha/beta, fewer than the {ds.num_classes} classes: choose a portion nearer 0.5"
        )
    model = build_supernet(cfg, ds).to(device)
    forward = wrap_ddp(model, device, info, ignore=list(SearchNetwork._ARCH))
    w_opt = torch.optim.SGD(
        model.weight_parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True
    )
    scaler = torch.amp.GradScaler(device.type) if cfg.precision == "fp16" else None
    architect = Architect(
        model,
        lr=cfg.arch_lr,
        betas=(cfg.arch_beta1, cfg.arch_beta2),
        weight_decay=cfg.arch_weight_decay,
        grad_clip=cfg.arch_grad_clip,
        unrolled=cfg.unrolled,
    )
    per_rank = cfg.batch_size // info.world_size
    aug = make_augment(cfg, ds, cfg.cutout)
    common = dict(
        device=device, rank=info.rank, world_size=info.world_size, workers=cfg.workers, augment=aug, jitter=False
    )  # the official search augments with crop + flip only
    train = make_stream(ds, w_part, per_rank, train=True, seed=cfg.seed, **common)
    val = make_stream(ds, a_part, per_rank, train=True, seed=cfg.seed + 1, **common)
    val_eval = make_stream(ds, a_part, max(per_rank, 256), train=False, device=device, workers=cfg.workers)
    start_epoch, history, acc = 0, [], new_accumulator(device)
    if state is not None:
        model.load_state_dict(state["model"])
        w_opt.load_state_dict(state["w_optimizer"])
        architect.optimizer.load_state_dict(state["arch_optimizer"])
        check_world_size(state, info.world_size)
        train.load_state_dict(state["train_stream"][info.rank] if info.enabled else state["train_stream"])
        val.load_state_dict(state["val_stream"][info.rank] if info.enabled else state["val_stream"])
        set_rng_state(state["rng"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
        acc = {k: v.to(device) for k, v in state["acc"].items()}
        log.info("resumed from %s at epoch %d", out / "checkpoint.pt", start_epoch)
    if info.is_main:
        atomic_write_json(out / "config.json", {"kind": "search", **asdict(cfg)})
        atomic_write_json(
            out / "environment.json", {**environment(), "world_size": info.world_size, "device": str(device)}
        )
    metrics = MetricsLog(out / "metrics.jsonl", resume_epoch=start_epoch if state else None, enabled=info.is_main)
    hist_log = MetricsLog(
        out / "arch_history.jsonl", resume_epoch=start_epoch if state else None, tensorboard=False, enabled=info.is_main
    )

    def checkpoint(epoch: int, mid_epoch: bool) -> None:
        streams = (train.state_dict(), val.state_dict())
        if info.enabled:  # every rank's stream position, gathered on rank 0
            gathered: list[Any] = [None] * info.world_size
            torch.distributed.all_gather_object(gathered, streams)
            streams = ([g[0] for g in gathered], [g[1] for g in gathered])
        if not info.is_main:
            return
        save_checkpoint(
            out / "checkpoint.pt",
            {
                "kind": "search",
                "config": asdict(cfg),
                "epoch": epoch,
                "mid_epoch": mid_epoch,
                "model": model.state_dict(),
                "w_optimizer": w_opt.state_dict(),
                "arch_optimizer": architect.optimizer.state_dict(),
                "train_stream": streams[0],
                "val_stream": streams[1],
                "rng": rng_state(),
                "history": history,
                "scaler": None if scaler is None else scaler.state_dict(),
                "acc": {k: v.detach().cpu() for k, v in acc.items()},
                "seconds": time.time() - t0,
                "num_classes": ds.num_classes,
                "in_channels": ds.in_channels,
            },
        )

    t0 = time.time() - (state or {}).get("seconds", 0.0)
    stopped = False
    stop_reason = early_stop(cfg, history)  # a resumed run that had already met its criterion
    with GracefulStop() as stop:
        for epoch in range(start_epoch, cfg.epochs if stop_reason is None else start_epoch):
            lr = search_lr(cfg, epoch)
            architect.reg_weight = beta_decay_weight(epoch, epochs=cfg.epochs, weight=cfg.beta_decay)
            for g in w_opt.param_groups:
                g["lr"] = lr
            arch_active = epoch >= cfg.warmup_epochs
            bar = tqdm(
                total=len(train),
                initial=len(train) - train.remaining(),
                desc=f"search {epoch + 1}/{cfg.epochs}",
                disable=not (progress and info.is_main),
                leave=False,
                dynamic_ncols=True,
            )

            def after_step(_: int, bar: tqdm = bar) -> bool:
                bar.update(1)
                return stop.requested

            t_epoch = time.time()
            interrupted = search_epoch(
                model,
                forward,
                architect,
                w_opt,
                train,
                val,
                arch_active=arch_active,
                grad_clip=cfg.grad_clip,
                eta=lr,
                acc=acc,
                after_step=after_step,
                precision=cfg.precision,
                scaler=scaler,
            )
            bar.close()
            if interrupted:
                checkpoint(epoch, mid_epoch=True)
                stopped = True
                break
            stats = summarise(all_reduce_sums(acc, info))
            check_finite(stats, "search")
            check_agreement(model.arch_parameters(), info)
            val_stats = evaluate(model, val_eval)
            genotype = model.genotype()
            record = {
                "epoch": epoch,
                "lr": lr,
                "arch_active": arch_active,
                "train_loss": stats["loss"],
                "train_acc": stats["accuracy"],
                "val_loss": val_stats["loss"],
                "val_acc": val_stats["top1"],
                "epoch_seconds": time.time() - t_epoch,
                "step_seconds": (time.time() - t_epoch) / max(stats["steps"], 1),
                **collapse_count(genotype),
            }
            if "arch_loss" in stats:
                record["arch_loss"] = stats["arch_loss"]
            if architect.reg_weight:
                record["beta_decay_weight"] = architect.reg_weight
            if info.enabled:
                record["ranks_agree"] = True
            history.append({"epoch": epoch, **model.arch_state(), "genotype": genotype.to_dict()})
            metrics.write(record)
            hist_log.write(history[-1])
            _log_arch_images(metrics, model, epoch)
            if info.is_main:
                log.info(epoch_line("search", record, epoch, cfg.epochs, time.time() - t0, start_epoch))
            acc = new_accumulator(device)
            checkpoint(epoch + 1, mid_epoch=False)
            stop_reason = early_stop(cfg, history)
            if stop_reason is not None:
                log.info("DARTS+ early stop after epoch %d: %s", epoch + 1, stop_reason)
                break
            if stop.requested or (stop_after_epochs is not None and epoch + 1 - start_epoch >= stop_after_epochs):
                stopped = epoch + 1 < cfg.epochs
                if stopped:
                    break
    metrics.close()
    cap = cfg.max_param_free if cfg.max_param_free >= 0 else None
    genotype = model.genotype(max_param_free=cap)
    result = {
        "genotype": genotype.to_dict(),
        "epochs_done": len(history),
        "seconds": time.time() - t0,
        "stopped": stopped,
        "out": str(out),
        "is_main": info.is_main,
        "world_size": info.world_size,
        "early_stop": None if stop_reason is None else {"epoch": history[-1]["epoch"], "reason": stop_reason},
        "genotype_uncapped": model.genotype().to_dict(),
    }
    if stopped:
        return result
    if info.is_main:
        atomic_write_json(out / "arch.json", model.arch_state())
        atomic_write_json(out / "genotype.json", genotype.to_dict())
        atomic_write_json(
            out / "search_result.json", {k: v for k, v in result.items() if k not in ("is_main", "stopped")}
        )
    barrier(info)
    return result


def _log_arch_images(metrics: MetricsLog, model: SearchNetwork, epoch: int) -> None:
    """softmax(alpha) of both cells as TensorBoard images (edges x ops, brighter = larger)."""
    if metrics.tb is None:
        return
    import numpy as np

    for name in ("alphas_normal", "alphas_reduce"):
        w = torch.softmax(getattr(model, name).detach().float().cpu(), dim=-1).numpy()
        img = (w - w.min()) / max(float(w.max() - w.min()), 1e-12)
        img = np.repeat(np.repeat(img, 16, axis=0), 16, axis=1)
        metrics.image(name, np.stack([img] * 3, axis=-1), epoch)
