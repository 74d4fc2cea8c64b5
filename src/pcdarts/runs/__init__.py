"""One run's life: configs and presets, the run folder, the loop and step engine, search, train,
select, distributed, memory and cost planning.
"""
