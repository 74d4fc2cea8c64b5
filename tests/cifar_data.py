"""A CIFAR-10 archive in the layout of the real one, with known pixels and labels, for the data tests."""

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np


def cifar_archive(path: Path, n_train=6, n_test=4, classes=10) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (n_train * 5 + n_test, 3072), dtype=np.uint8)
    labels = [int(i % classes) for i in range(len(data))]
    with tarfile.open(path, "w:gz") as tar:

        def add(name, obj):
            raw = pickle.dumps(obj)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))

        for b in range(5):
            sl = slice(b * n_train, (b + 1) * n_train)
            add(f"data_batch_{b + 1}", {b"data": data[sl], b"labels": labels[sl]})
        add("test_batch", {b"data": data[-n_test:], b"labels": labels[-n_test:]})
        add("batches.meta", {b"label_names": [f"c{i}".encode() for i in range(classes)]})
    return data, labels
