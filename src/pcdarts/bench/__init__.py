"""Benchmarks that print numbers: search/train step time and memory, K scaling, recompute, data, compile.

``python -m pcdarts.bench memory``     saved activations and peak memory of one search step for K = 1, 2, 4, 8
``python -m pcdarts.bench step``       search/train step timings, optimised vs ``--baseline`` (reference habits)
``python -m pcdarts.bench recompute``  peak memory and step time per ``--recompute`` mode vs the reference
``python -m pcdarts.bench data``       on-device batched augmentation vs a per-sample pipeline
``python -m pcdarts.bench compile``    final-network training step, eager vs ``torch.compile``

Memory is reported two ways: bytes of activations autograd saves for the backward pass (exact, the
quantity partial channels shrink), and the process's peak memory (CUDA max allocated on GPU; peak RSS
growth on CPU, each configuration in a fresh subprocess so allocators do not carry over).
"""

from .commands import main
from .steps import project_search_minutes

__all__ = ["main", "project_search_minutes"]
