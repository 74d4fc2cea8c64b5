"""Many runs: studies and calibrations, their work units and scheduler, statistics, tables,
one-shot scores and protocol files.
"""
