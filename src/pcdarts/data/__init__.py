"""Datasets, splits and on-device batched augmentation."""

from . import cifar as _cifar  # noqa: F401  (registers cifar10, cifar100)
from . import idx as _idx  # noqa: F401  (registers fashion-mnist, mnist)
from .augment import Augment, cutout, random_crop, random_flip
from .datasets import DATASETS, SHAPES, DataError, Shape, TensorDataset, get_dataset, register_dataset
from .folder import FolderDataset, FolderStream, subsample
from .splits import (
    carve_selection,
    final_test_part,
    limit_train,
    make_stream,
    part_size,
    search_parts,
    selection_part,
    stratified_split,
    train_part,
)
from .stream import BatchStream

__all__ = [
    "Augment",
    "BatchStream",
    "DATASETS",
    "SHAPES",
    "Shape",
    "DataError",
    "FolderDataset",
    "FolderStream",
    "TensorDataset",
    "cutout",
    "get_dataset",
    "make_stream",
    "part_size",
    "random_crop",
    "random_flip",
    "register_dataset",
    "search_parts",
    "subsample",
    "final_test_part",
    "carve_selection",
    "selection_part",
    "train_part",
    "limit_train",
    "stratified_split",
]
