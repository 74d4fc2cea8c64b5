"""A run's cell: a genotype by name, file, run folder or text; a search run's final alpha/beta derived again,
with the P-DARTS cap if asked; and the size of a cell's final network (``describe_network``, ``info``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import RunError
from ..files import read_run_json
from ..nas.derive import derive_from_arch
from ..nas.genotype import GENOTYPES, MAX_TEXT, Genotype, GenotypeError, parse_genotype_text


def load_genotype(spec: str) -> Any:
    """Resolve a built-in name, a JSON file (genotype.json or a run's result), reference text, or a
    NAS-Bench-201 string (``|nor_conv_3x3~0|+|...|``, an ``NB201Genotype``)."""
    if spec in GENOTYPES:
        return GENOTYPES[spec]
    text = spec
    path = Path(spec)
    if spec.lstrip().startswith(("{", "Genotype", "|")):
        pass
    elif path.is_dir() and (path / "genotype.json").is_file():
        return _genotype_json(path / "genotype.json")
    elif path.is_file():
        if path.stat().st_size > 4 * MAX_TEXT:
            raise GenotypeError(f"genotype file {spec} is {path.stat().st_size:,} bytes; a genotype needs far fewer")
        try:
            raw = path.read_bytes()
            if raw.lstrip().startswith(b"{"):  # genotype.json, or a run's result that holds one
                return _genotype_json(path)
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise GenotypeError(
                f"genotype file {spec} is not UTF-8 text: is it a genotype.json or Genotype(...) text?"
            ) from None
        except OSError as exc:
            raise GenotypeError(f"cannot read genotype file {spec}: {exc.strerror or exc}") from None
    else:
        known = ", ".join(GENOTYPES)
        raise GenotypeError(f"{spec!r} is not a built-in genotype ({known}), an existing file, or Genotype(...) text")
    stripped = text.strip()
    if stripped.startswith("|"):  # NAS-Bench-201's string form
        from ..nas.nb201 import parse_nb201

        return parse_nb201(stripped)
    if len(stripped) > 4 * MAX_TEXT:
        raise GenotypeError(f"genotype text is {len(stripped):,} characters long; a genotype needs far fewer")
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise GenotypeError(f"malformed genotype JSON in {spec[:80]!r}: {exc.msg} at line {exc.lineno}") from None
        except (ValueError, RecursionError) as exc:  # absurd numbers or nesting
            raise GenotypeError(f"unusable genotype JSON in {spec[:80]!r}: {type(exc).__name__}") from None
        return Genotype.from_dict(data)
    return parse_genotype_text(stripped)


def _genotype_json(path: Path) -> Genotype:
    try:
        return Genotype.from_dict(read_run_json(path, fix="give an intact genotype.json, or the cell as text"))
    except RunError as exc:
        raise GenotypeError(str(exc)) from None


def derive_from_run(
    path: str | Path, *, max_param_free: int | None = None, max_param_free_reduce: int | None = None
) -> Genotype:
    """The genotype of a search run's final alpha/beta: a run folder or its ``arch.json``.

    With ``max_param_free`` (normal cell) / ``max_param_free_reduce`` (reduction cell) the P-DARTS cap
    is applied, so a finished search can be re-derived.
    """
    p = Path(path)
    f = p / "arch.json" if p.is_dir() else p
    if not f.is_file():
        raise GenotypeError(f"no arch.json in {p}: is it a finished search run folder?")
    try:
        arch = read_run_json(f)  # bounded: size, encoding, nesting
    except RunError:
        raise GenotypeError(f"{f} is not readable JSON: use an intact arch.json") from None
    return derive_from_arch(arch, max_param_free=max_param_free, max_param_free_reduce=max_param_free_reduce)


def describe_network(
    spec: str,
    *,
    dataset: str | None = None,
    init_channels: int | None = None,
    layers: int | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Parameters and multiply-adds of the final network of a cell (``load_genotype``'s ``spec``): a training
    run folder's own network (its checkpoint's shape; ``dataset`` cannot change it), else the network of
    ``runs.presets.described_network`` on ``dataset`` (CIFAR-10 by default); the keyword values replace its
    width, depth and classes. ``trained_run`` says which of the two it was."""
    from ..data import SHAPES
    from ..nas.network import build_network, count_macs, count_params
    from .config import check_shape
    from .presets import described_network

    genotype = load_genotype(spec)
    run = Path(spec)
    trained = run.is_dir() and (run / "result.json").is_file()
    if trained:  # the network it trained, at its own input size and classes
        from ..deploy import load_trained

        info = load_trained(run)[1]
        args = info.model_args
        dataset, cin, side = info.dataset, info.in_channels, info.input_size[0]
        classes, stem, c, depth = args["num_classes"], args["stem"], args["init_channels"], args["layers"]
    else:
        dataset = dataset or "cifar10"
        cfg, (cin, side, _) = described_network(dataset, getattr(genotype, "cell", "darts"))
        classes, stem, c, depth = SHAPES[dataset].classes, cfg.stem, cfg.init_channels, cfg.layers
    c = c if init_channels is None else init_channels
    depth = depth if layers is None else layers
    classes = classes if num_classes is None else num_classes
    check_shape(init_channels=c, layers=depth, num_classes=classes)
    model = build_network(
        genotype, num_classes=classes, in_channels=cin, init_channels=c, layers=depth, auxiliary=False, stem=stem
    )
    return {
        "params": count_params(model),
        "macs": count_macs(model, (cin, side, side)),
        "dataset": dataset,
        "input": [cin, side, side],
        "init_channels": c,
        "layers": depth,
        "num_classes": classes,
        "genotype": genotype.to_dict(),
        "trained_run": trained,
    }
