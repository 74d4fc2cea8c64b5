"""pcdarts: PC-DARTS partial-channel differentiable architecture search on PyTorch."""

from typing import Any

from .errors import ConfigError, PCDartsError
from .nas.candidates import OPS, SPACES, OpSpace, op_space, register_op
from .nas.derive import derive_genotype
from .nas.genotype import GENOTYPES, Genotype, GenotypeError, parse_genotype_text, random_genotype
from .nas.supernet import SearchNetwork
from .runs.artifacts import derive_from_run, load_genotype

__version__ = "0.1.0"

_LAZY = {
    "NB201Genotype": ("nas.nb201", "NB201Genotype"),
    "parse_nb201": ("nas.nb201", "parse_nb201"),
    "random_nb201": ("nas.nb201", "random_nb201"),
    "NB201SearchNetwork": ("nas.nb201_search", "NB201SearchNetwork"),
    "load_model": ("deploy", "load_model"),
    "load_trained": ("deploy", "load_trained"),
    "ModelInfo": ("deploy", "ModelInfo"),
    "run_train": ("runs.train", "run_train"),
    "run_search": ("runs.search", "run_search"),
    "build_network": ("nas.network", "build_network"),
    "SearchConfig": ("runs.config", "SearchConfig"),
    "TrainConfig": ("runs.config", "TrainConfig"),
    "StudyConfig": ("experiments.study", "StudyConfig"),
    "Arm": ("experiments.study", "Arm"),
    "run_study": ("experiments.study", "run_study"),
    "predict": ("deploy", "predict"),
    "predict_tensor": ("deploy", "predict_tensor"),
    "evaluate_trained": ("runs.evaluate", "evaluate_trained"),
    "export_model": ("deploy", "export_model"),
    "run_select": ("runs.select", "run_select"),
    "SelectConfig": ("runs.select", "SelectConfig"),
    "run_fidelity": ("experiments.fidelity", "run_fidelity"),
    "FidelityConfig": ("experiments.fidelity", "FidelityConfig"),
}


def __getattr__(name: str) -> Any:
    """Heavier entry points load on first use, so ``import pcdarts`` stays quick."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'pcdarts' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazily loaded API too, so ``dir(pcdarts)`` and completion show it."""
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "NB201Genotype",
    "NB201SearchNetwork",
    "parse_nb201",
    "random_nb201",
    "OPS",
    "SPACES",
    "OpSpace",
    "op_space",
    "register_op",
    "Arm",
    "ConfigError",
    "PCDartsError",
    "StudyConfig",
    "derive_from_run",
    "random_genotype",
    "run_study",
    "GENOTYPES",
    "Genotype",
    "GenotypeError",
    "SearchConfig",
    "SearchNetwork",
    "TrainConfig",
    "build_network",
    "derive_genotype",
    "load_genotype",
    "load_model",
    "load_trained",
    "ModelInfo",
    "parse_genotype_text",
    "run_search",
    "run_train",
    "predict",
    "predict_tensor",
    "export_model",
    "run_select",
    "evaluate_trained",
    "SelectConfig",
    "run_fidelity",
    "FidelityConfig",
    "__version__",
]
