"""The tables ``pcdarts bench`` prints from each measurement's result (the same dicts ``--json`` prints)."""

from __future__ import annotations

from typing import Any


def print_memory(res: dict[str, Any]) -> None:
    c = res["config"]
    print(
        f"search step memory: C={c['channels']}, {c['layers']} cells, batch {c['batch']}, {c['size']}x{c['size']}, "
        f"device {c['device']}, torch {res['machine']['torch']}, threads {c['threads']}"
    )
    print(f"{'K':>3} {'saved activations MiB':>22} {'vs K=1':>7} {'peak step MiB':>14} {'vs K=1':>7}")
    for r in res["rows"]:
        sv = f"{r.get('saved_vs_k1', float('nan')):.3f}"
        pv = f"{r['peak_vs_k1']:.3f}" if r.get("peak_vs_k1") is not None else "n/a"
        print(f"{r['k']:>3} {r['saved_activations_mib']:>22.1f} {sv:>7} {r['peak_step_mib']:>14.1f} {pv:>7}")


def print_compile(res: dict[str, Any]) -> None:
    c, m = res["config"], res["machine"]
    print(
        f"{res['benchmark']}: "
        + (
            f"supernet C={c['channels']}, {c['layers']} cells, K={c['k']}, "
            if c.get("regional")
            else f"PC_DARTS_cifar C={c['train_channels']}, {c['train_layers']} cells, "
        )
        + f"batch {c['batch']}, "
        f"{c['size']}x{c['size']}, {c['device']}, torch {m['torch']}, {c['threads']} threads, load {m['load_1min']}"
    )
    print(f"first compiled step (compiling): {res['first_compiled_step_s']:.1f} s")
    for name, r in res["rows"].items():
        print(f"{name:>9} {r['median_s']:.3f} s/step ({r['min_s']:.3f}-{r['max_s']:.3f}) {r['images_per_s']:.1f} img/s")
    print(f"compiled speed-up over eager: {res['compiled_speedup']:.2f}x")


def _supernet_setup(res: dict[str, Any]) -> str:
    """The first line's common part: supernet shape, input, device, torch, threads and load of one result."""
    c, m = res["config"], res["machine"]
    cell = "" if c.get("cell", "darts") == "darts" else f"{c['cell']} cell, "
    return (
        f"{cell}C={c['channels']}, {c['layers']} cells, K={c['k']}, batch {c['batch']}, {c['size']}x{c['size']}, "
        f"{c['device']}, torch {m['torch']}, {c['threads']} threads, load {m['load_1min']}"
    )


def print_fanout(res: dict[str, Any]) -> None:
    print(f"fan-out vs edge by edge: {_supernet_setup(res)}")
    print(f"{'mode':>13} {'search s/step (min-max)':>26} {'eval s/batch (min-max)':>26}")
    for name, r in res["rows"].items():
        s, e = r["search"], r["eval_step"]
        print(
            f"{name:>13} {s['median_s']:>9.3f} ({s['min_s']:.3f}-{s['max_s']:.3f}) "
            f"{e['median_s']:>9.3f} ({e['min_s']:.3f}-{e['max_s']:.3f})"
        )
    print(f"fan-out speed-up: search step {res['search_speedup']:.2f}x, evaluation {res['eval_speedup']:.2f}x")


def print_layout(res: dict[str, Any]) -> None:
    c, m = res["config"], res["machine"]
    print(
        f"final-network training step by layout: PC_DARTS_cifar C={c['train_channels']}, {c['train_layers']} cells, "
        f"batch {c['batch']}, {c['in_channels']}x{c['size']}x{c['size']}, {c['device']}, torch {m['torch']}, "
        f"{c['threads']} threads, load {m['load_1min']}"
    )
    print(f"{'layout':>14} {'train s/step (min-max)':>26} {'img/s':>7}")
    for name, r in res["rows"].items():
        print(f"{name:>14} {r['median_s']:>9.3f} ({r['min_s']:.3f}-{r['max_s']:.3f}) {r['images_per_s']:>9.0f}")
    print(f"channels_last speed-up: {res['channels_last_speedup']:.2f}x")


def print_by_module(res: dict[str, Any]) -> None:
    c = res["config"]
    print(f"saved activations by module: C={c['channels']}, {c['layers']} cells, K={c['k']}, batch {c['batch']}")
    for mode, table in res["tables"].items():
        total = sum(table.values())
        print(f"{mode}: {total:.1f} MiB")
        for where, mib in list(table.items())[:12]:
            print(f"  {mib:9.1f} MiB {100 * mib / total:5.1f} %  {where}")


def print_recompute(res: dict[str, Any]) -> None:
    print(f"search step memory by recompute mode: {_supernet_setup(res)}")
    print(f"{'mode':>18} {'peak MiB':>9} {'vs reference':>13} {'search s/step (min-max)':>26} {'batch in 24 GiB':>16}")
    for r in res["rows"]:
        s = r["search"]
        ratio = f"{r['peak_vs_reference']:.3f}" if r.get("peak_vs_reference") is not None else "n/a"
        fits = str(r.get("batch_fitting_budget", "-"))
        print(
            f"{r['mode']:>18} {r['search_peak_mib']:>9.1f} {ratio:>13} "
            f"{s['median_s']:>9.3f} ({s['min_s']:.3f}-{s['max_s']:.3f}) {fits:>16}"
        )


def print_step(res: dict[str, Any]) -> None:
    c, m = res["config"], res["machine"]
    print(
        f"step benchmark: C={c['channels']}, {c['layers']} cells, K={c['k']}, batch {c['batch']}, "
        f"{c['size']}x{c['size']}, "
        f"{c['device']} {c['precision']}, torch {m['torch']}, {c['threads']} threads, load {m['load_1min']}"
    )
    print(
        f"{'mode':>10} {'search s/step (min-max)':>26} {'img/s':>7} {'peak MiB':>9} "
        f"{'train s/step (min-max)':>26} {'img/s':>7}"
    )
    for r in res["rows"]:
        s, t = r["search"], r["train"]
        print(
            f"{r['mode']:>10} {s['median_s']:>9.3f} ({s['min_s']:.3f}-{s['max_s']:.3f}) {s['images_per_s']:>7.1f} "
            f"{r['search_peak_mib']:>9.1f} {t['median_s']:>9.3f} ({t['min_s']:.3f}-{t['max_s']:.3f}) "
            f"{t['images_per_s']:>7.1f}"
        )
    if "search_speedup" in res:
        print(
            f"speed-up over baseline: search {res['search_speedup']:.2f}x, train {res['train_speedup']:.2f}x; "
            f"search peak memory ratio {res.get('search_peak_ratio', float('nan')):.2f}"
        )
    print(
        f"projected search ({c['project_epochs']} epochs, {c['project_warmup']} warm-up, "
        f"{c['project_images']:,} train + "
        f"{c['project_images']:,} val images, batch {c['batch']}; weight step "
        + ", ".join(f"{r['mode']} {r['weight_step']['median_s']:.3f} s" for r in res["rows"])
        + "): "
        + ", ".join(f"{r['mode']} {r['projected_search_min']:.1f} min" for r in res["rows"])
    )
