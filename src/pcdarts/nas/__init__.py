"""Pure torch, no files or configs: the op table and spaces, cells, supernets, fan-out, the
architect, final networks, derivation, remedies, perturbation masks.
"""
