"""The PC-DARTS search as a library call: ``run_search(config, out_dir)``."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..data import FolderDataset, TensorDataset, make_stream, part_size, search_parts
from ..errors import RunError, first_line
from ..files import atomic_write_json, load_checkpoint, require_keys
from ..nas.architect import Architect
from ..nas.candidates import space_of
from ..nas.genotype import Genotype, none_count, param_free_count
from ..nas.remedies import beta_decay_weight, early_stop_reason
from ..nas.supernet import SearchNetwork
from .config import SearchConfig, build_search_network
from .distributed import all_reduce_sums, barrier, check_agreement, wrap_ddp
from .engine import check_finite, cosine_lr, epoch_stats, evaluate, new_accumulator, search_epoch, sgd_impl
from .formats import FILE_FORMAT, read_result
from .inputs import check_data, load_data, make_augment
from .loop import Context, check_world_size, run_task
from .metrics import MetricsLog

log = logging.getLogger(__name__)

EVAL_BATCH = 256  # the smallest batch of the no-grad validation pass: no activations kept, so larger is cheap


# Below these a proxy search cannot learn (Study I, docs/STUDY.md): candidate ops with fewer channels are
# too weak to beat parameter-free ops, and alpha needs steps after the convolutions have trained.
MIN_OP_CHANNELS, MIN_ARCH_STEPS = 4, 1000


def search_counts(cfg: SearchConfig, ds: TensorDataset | FolderDataset) -> dict[str, int]:
    """Steps an epoch, warm-up and arch steps, and the channels each candidate op gets in the first cells."""
    w_part, _ = search_parts(ds, cfg.train_portion, cfg.seed)
    steps = -(-part_size(w_part) // cfg.batch_size)
    return {
        "steps_per_epoch": steps,
        "warmup_steps": steps * cfg.warmup_epochs,
        "arch_steps": steps * (cfg.epochs - cfg.warmup_epochs),
        "op_channels": cfg.init_channels // cfg.k,
    }


def learnability_warnings(cfg: SearchConfig, counts: dict[str, int]) -> list[str]:
    """One line per reason the search may not learn at this scale (warnings, not errors: a smoke test is fine)."""
    out = []
    if counts["op_channels"] < MIN_OP_CHANNELS:
        out.append(
            f"each candidate op gets {counts['op_channels']} channel(s) in the first cells (C {cfg.init_channels} / "
            f"K {cfg.k}): below {MIN_OP_CHANNELS}, convolutions are too weak to win over parameter-free ops; raise "
            "--init-channels or lower --k"
        )
    if counts["arch_steps"] < MIN_ARCH_STEPS:
        out.append(
            f"only {counts['arch_steps']} arch steps follow the {counts['warmup_steps']} warm-up steps: alpha "
            f"barely moves in fewer than {MIN_ARCH_STEPS} (the paper: about 3,430); add epochs or lower --batch-size"
        )
    return out


def schedule_line(counts: dict[str, int]) -> str:
    return (
        f"{counts['steps_per_epoch']} steps an epoch: {counts['warmup_steps']} warm-up steps, then "
        f"{counts['arch_steps']} arch steps; {counts['op_channels']} channels per candidate op in the first cells"
    )


def collapse_count(genotype: Genotype) -> dict[str, int]:
    """Parameter-free ops in the derived cells: a rising count warns of skip-connection collapse (in the
    NAS-Bench-201 cell, whose edges are all kept, ``none`` edges too)."""
    if getattr(genotype, "cell", "darts") != "darts":
        return {"param_free_normal": param_free_count(genotype.normal), "none_edges": none_count(genotype.normal)}
    return {
        "param_free_normal": param_free_count(genotype.normal),
        "param_free_reduce": param_free_count(genotype.reduce),
    }


COLLAPSED = 5  # parameter-free ops of 8 in a cell from which a search has drifted


def collapse_note(g: Any, out: str | Path) -> str:
    """A search drifted to parameter-free ops: say so and how to read a capped cell off the same search."""
    n, r = param_free_count(g.normal), param_free_count(g.reduce)
    if getattr(g, "cell", "darts") != "darts":  # six edges, none cut: a cell of skips and pools
        if n + g.counts()["none"] < 5:
            return ""
        return (
            f"note: {n} of the cell's 6 edges are parameter-free and {g.counts()['none']} are cut (none): a capped "
            f"cell from the same search is `pcdarts derive {out} --max-param-free 2 --out {out}-cap2.json`\n"
        )
    if max(n, r) < COLLAPSED:
        return ""
    return (
        f"note: the search drifted to parameter-free ops ({n} of 8 normal, {r} of 8 reduction): a capped cell from "
        f"the same search is `pcdarts derive {out} --max-param-free 2 --max-param-free-reduce 2 --out "
        f"{out}-cap2.json` (in Python: pcdarts.derive_from_run); next time search with --max-param-free 2 "
        "--max-param-free-reduce 2\n"
    )


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
    arch = [Genotype.from_dict(h["genotype"]) for h in history if h["epoch"] > cfg.warmup_epochs]  # from 1
    return early_stop_reason(arch, param_free=cfg.early_stop_param_free, stable=cfg.early_stop_stable)


def load_finished_supernet(
    run: str | Path,
    scfg: SearchConfig,
    ds: TensorDataset | FolderDataset,
    device: str | torch.device = "cpu",
    *,
    keys: tuple[str, ...] = (),
) -> tuple[SearchNetwork, dict[str, Any]]:
    """The supernet at the end of the finished search in ``run`` (settings ``scfg``, data ``ds``) on ``device``,
    and the search's checkpoint, which must also hold ``keys``.

    A search is finished when its checkpoint is a search's at its last epoch (``scfg.epochs``), or at an earlier
    one where search_result.json records a DARTS+ early stop. Anything else is refused in one line (RunError):
    a checkpoint of another kind or of a search stopped part-way, one that lacks a key, or weights that do not
    fit ``scfg``.
    """
    run = Path(run)
    ckpt = run / "checkpoint.pt"
    state = load_checkpoint(ckpt, "cpu")
    require_keys(state, ("model", "epoch", *keys), ckpt)
    result = run / "search_result.json"
    stopped_early = result.is_file() and bool(read_result(result).get("early_stop"))
    if state.get("kind") != "search" or (int(state["epoch"]) != scfg.epochs and not stopped_early):
        raise RunError(f"{ckpt} is not the end of a finished search: finish the search first (--resume)")
    net = build_search_network(scfg, num_classes=ds.num_classes, in_channels=ds.in_channels)
    net.to(device)
    try:
        net.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise RunError(
            f"{ckpt}: its weights do not fit the search's config.json ({first_line(exc, 120)}); damaged"
        ) from None
    return net, state


def run_search(
    cfg: SearchConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    extend: bool = False,
) -> dict[str, Any]:
    """Search a cell; writes genotype.json, arch_history.jsonl, metrics.jsonl and checkpoint.pt in ``out``.

    ``extend`` with ``resume``: continue a search to ``cfg.epochs``, more than it had (``loop.run_task``).
    """
    task = SearchTask(cfg)
    return run_task(task, cfg, out, resume=resume, overwrite=overwrite, progress=progress, extend=extend)


class SearchTask:
    """PC-DARTS search epochs: an arch step on a val batch, then a weight step on a train batch (Sec. 3)."""

    kind, checkpoint_kind, final = "search", "search", "genotype.json"

    def __init__(self, cfg: SearchConfig):
        self.cfg = cfg

    def setup(self, ctx: Context, state: dict[str, Any] | None) -> int:
        cfg, info, device = self.cfg, ctx.info, ctx.device
        self.ctx = ctx
        ds = self.ds = load_data(cfg)
        check_data(ds, state, ctx.out)
        if cfg.batch_size % info.world_size:
            raise RunError(f"batch size {cfg.batch_size} must be divisible by the {info.world_size} processes")
        w_part, a_part = search_parts(ds, cfg.train_portion, cfg.seed)
        if min(part_size(w_part), part_size(a_part)) < max(info.world_size, ds.num_classes):
            n = part_size(w_part) + part_size(a_part)
            raise RunError(
                f"train portion {cfg.train_portion} of {n} images leaves {part_size(w_part)} for the weights and "
                f"{part_size(a_part)} for alpha/beta, fewer than the {ds.num_classes} classes: choose a portion "
                "nearer 0.5"
            )
        self.counts = search_counts(cfg, ds)
        if info.is_main:
            log.info("search: %s", schedule_line(self.counts))
            for warning in learnability_warnings(cfg, self.counts):
                log.warning("warning: %s", warning)
        self.model = model = build_search_network(cfg, num_classes=ds.num_classes, in_channels=ds.in_channels)
        model.to(device)
        self.forward = wrap_ddp(model, device, info, ignore=list(model._ARCH))
        self.w_opt = torch.optim.SGD(
            model.weight_parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            **sgd_impl(device),
        )
        self.scaler = torch.amp.GradScaler(device.type) if cfg.precision == "fp16" else None
        self.architect = Architect(
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
        self.train = make_stream(ds, w_part, per_rank, train=True, seed=cfg.seed, **common)
        self.val = make_stream(ds, a_part, per_rank, train=True, seed=cfg.seed + 1, **common)
        self.val_eval = make_stream(
            ds, a_part, max(per_rank, EVAL_BATCH), train=False, device=device, workers=cfg.workers
        )
        self.history: list[dict[str, Any]] = []
        self.acc = new_accumulator(device)
        start_epoch = 0
        if state is not None:
            saved = space_of(state["space"] if isinstance(state.get("space"), dict) else {})
            if saved.ops != model.ops:
                raise RunError(
                    f"the checkpoint searched ops {', '.join(saved.ops)}; this run asks for {', '.join(model.ops)}: "
                    "resume with the original --space/--ops or start a new --out"
                )
            model.load_state_dict(state["model"])
            self.w_opt.load_state_dict(state["w_optimizer"])
            self.architect.optimizer.load_state_dict(state["arch_optimizer"])
            check_world_size(state, info.world_size)
            ctx.load_stream(self.train, state["train_stream"])
            ctx.load_stream(self.val, state["val_stream"])
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            start_epoch, self.history = int(state["epoch"]), list(state["history"])
            self.acc = {k: v.to(device) for k, v in state["acc"].items()}
        self.hist_log = MetricsLog(
            ctx.out / "arch_history.jsonl",
            resume_epoch=start_epoch if state else None,
            tensorboard=False,
            enabled=info.is_main,
            old_format=ctx.old_format,
        )
        self.reason = early_stop(cfg, self.history)  # a resumed run that had already met its criterion
        return start_epoch

    def config_record(self) -> dict[str, Any]:
        return {"kind": "search", **asdict(self.cfg)}

    def epoch_cost(self, epoch: int) -> float:
        """Relative cost of an epoch for the ETA: an arch epoch adds an arch step to every weight step."""
        return 2.0 if epoch >= self.cfg.warmup_epochs else 1.0

    def steps(self) -> tuple[int, int]:
        return len(self.train), self.train.remaining()

    def run_epoch(self, epoch: int, after_step: Any) -> bool:
        cfg = self.cfg
        self.lr = search_lr(cfg, epoch)
        self.architect.reg_weight = beta_decay_weight(epoch, epochs=cfg.epochs, weight=cfg.beta_decay)
        for g in self.w_opt.param_groups:
            g["lr"] = self.lr
        return search_epoch(
            self.model,
            self.forward,
            self.architect,
            self.w_opt,
            self.train,
            self.val,
            arch_active=epoch >= cfg.warmup_epochs,
            grad_clip=cfg.grad_clip,
            eta=self.lr,
            acc=self.acc,
            after_step=after_step,
            precision=cfg.precision,
            scaler=self.scaler,
        )

    def end_epoch(self, epoch: int, seconds: float, metrics: MetricsLog, *, cpu_seconds: float) -> dict[str, Any]:
        info, model = self.ctx.info, self.model
        stats = epoch_stats(all_reduce_sums(self.acc, info))
        check_finite(stats, "search", checkpoint=(self.ctx.out / "checkpoint.pt").is_file())
        self._check_arch_range()
        check_agreement(model.arch_parameters(), info)
        val_stats = evaluate(model, self.val_eval)
        genotype = model.genotype()
        record = {
            "epoch": epoch + 1,  # files and console count epochs from 1
            "lr": self.lr,
            "arch_active": epoch >= self.cfg.warmup_epochs,
            "train_loss": stats["loss"],
            "train_acc": stats["accuracy"],
            "val_loss": val_stats["loss"],
            "val_acc": val_stats["top1"],
            "epoch_seconds": seconds,
            "epoch_cpu_seconds": cpu_seconds,
            "step_seconds": seconds / max(stats["steps"], 1),
            **collapse_count(genotype),
        }
        if "arch_loss" in stats:
            record["arch_loss"] = stats["arch_loss"]
        if self.architect.reg_weight:
            record["beta_decay_weight"] = self.architect.reg_weight
        if info.enabled:
            record["ranks_agree"] = True
        self.history.append({"epoch": epoch + 1, **model.arch_state(), "genotype": genotype.to_dict()})
        metrics.write(record)
        self.hist_log.write(self.history[-1])
        _log_arch_images(metrics, model, epoch + 1)
        self.acc = new_accumulator(self.ctx.device)
        self.reason = early_stop(self.cfg, self.history)
        return record

    ARCH_RANGE = 100.0  # |alpha| or |beta| past this saturates the softmax: every step since has been lost

    def _check_arch_range(self) -> None:
        """Warn once when alpha/beta leave a sane range (an arch lr far too large), instead of saying nothing."""
        if getattr(self, "_warned_range", False) or not self.ctx.info.is_main:
            return
        top = max(float(p.detach().abs().max()) for p in self.model.arch_parameters())
        if top > self.ARCH_RANGE:
            self._warned_range = True
            log.warning(
                "warning: alpha/beta reached %.3g (a few units is usual): their softmax is saturated and the "
                "derived cell is fixed by the first steps; lower --arch-lr (now %g)",
                top,
                self.cfg.arch_lr,
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "w_optimizer": self.w_opt.state_dict(),
            "arch_optimizer": self.architect.optimizer.state_dict(),
            "train_stream": self.ctx.stream_state(self.train),
            "val_stream": self.ctx.stream_state(self.val),
            "history": self.history,
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "acc": {k: v.detach().cpu() for k, v in self.acc.items()},
            "num_classes": self.ds.num_classes,
            "in_channels": self.ds.in_channels,
            "space": self.model.space.to_dict(),
        }

    def stop_reason(self) -> str | None:
        return self.reason

    def finish(self, *, stopped: bool, seconds: float, cpu_seconds: float | None) -> dict[str, Any]:
        cfg, info, out, model = self.cfg, self.ctx.info, self.ctx.out, self.model
        self.hist_log.close()
        cap = cfg.max_param_free if cfg.max_param_free >= 0 else None
        cap_r = cfg.max_param_free_reduce if cfg.max_param_free_reduce >= 0 else None
        genotype = model.genotype(max_param_free=cap, max_param_free_reduce=cap_r)
        reason = self.reason
        result = {
            "format": FILE_FORMAT,  # epochs counted from 1
            "genotype": genotype.to_dict(),
            "epochs_done": len(self.history),
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "stopped": stopped,
            "out": str(out),
            "is_main": info.is_main,
            "world_size": info.world_size,
            "early_stop": None if reason is None else {"epoch": self.history[-1]["epoch"], "reason": reason},
            "genotype_uncapped": model.genotype().to_dict(),
            **self.counts,
            "warnings": learnability_warnings(cfg, self.counts),
        }
        if stopped:
            return result
        if info.is_main:
            atomic_write_json(out / "arch.json", model.arch_state())
            atomic_write_json(out / "genotype.json", genotype.to_dict())
            saved = {k: v for k, v in result.items() if k not in ("is_main", "stopped")}
            atomic_write_json(out / "search_result.json", saved)
        barrier(info)
        return result


def _log_arch_images(metrics: MetricsLog, model: SearchNetwork, epoch: int) -> None:
    """softmax(alpha) of both cells as TensorBoard images (edges x ops, brighter = larger)."""
    if metrics.tb is None:
        return
    import numpy as np

    for name in ("alphas_normal", "alphas_reduce"):
        if not hasattr(model, name):  # the NAS-Bench-201 cell has one alpha
            continue
        w = torch.softmax(getattr(model, name).detach().float().cpu(), dim=-1).numpy()
        img = (w - w.min()) / max(float(w.max() - w.min()), 1e-12)
        img = np.repeat(np.repeat(img, 16, axis=0), 16, axis=1)
        metrics.image(name, np.stack([img] * 3, axis=-1), epoch)
