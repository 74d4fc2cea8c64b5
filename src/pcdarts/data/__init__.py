"""Datasets, splits and on-device batched augmentation."""

from .augment import Augment, cutout, random_crop, random_flip
from .datasets import DATASETS, DataError, TensorDataset, get_dataset, register_dataset
from .loader import BatchStream

__all__ = [
    "Augment", "BatchStream", "DATASETS", "DataError", "TensorDataset", "cutout", "get_dataset",
    "random_crop", "random_flip", "register_dataset",
]
