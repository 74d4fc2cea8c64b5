"""pcdarts: PC-DARTS partial-channel differentiable architecture search on PyTorch."""

from .genotype import GENOTYPES, Genotype, GenotypeError, derive_genotype, load_genotype, parse_genotype_text
from .supernet import SearchNetwork

__version__ = "0.1.0"

__all__ = [
    "GENOTYPES", "Genotype", "GenotypeError", "SearchNetwork", "derive_genotype", "load_genotype",
    "parse_genotype_text", "__version__",
]
