"""pcdarts: PC-DARTS partial-channel differentiable architecture search on PyTorch."""

from typing import Any

from .candidates import OPS, SPACES, OpSpace, op_space, register_op
from .derive import derive_from_run, derive_genotype
from .errors import ConfigError, PCDartsError
from .genotype import (
    GENOTYPES,
    Genotype,
    GenotypeError,
    load_genotype,
    parse_genotype_text,
    random_genotype,
)
from .supernet import SearchNetwork

__version__ = "0.1.0"

_LAZY = {
    "load_model": ("train", "load_model"),
    "load_trained": ("train", "load_trained"),
    "ModelInfo": ("train", "ModelInfo"),
    "run_train": ("train", "run_train"),
    "run_search": ("search", "run_search"),
    "build_network": ("network", "build_network"),
    "SearchConfig": ("config", "SearchConfig"),
    "TrainConfig": ("config", "TrainConfig"),
    "StudyConfig": ("study", "StudyConfig"),
    "Arm": ("study", "Arm"),
    "run_study": ("study", "run_study"),
    "predict": ("export", "predict"),
    "predict_tensor": ("export", "predict_tensor"),
    "export_model": ("export", "export_model"),
    "run_select": ("select", "run_select"),
    "SelectConfig": ("select", "SelectConfig"),
    "run_fidelity": ("fidelity", "run_fidelity"),
    "FidelityConfig": ("fidelity", "FidelityConfig"),
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
    "SelectConfig",
    "run_fidelity",
    "FidelityConfig",
    "__version__",
]
