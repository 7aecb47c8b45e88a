"""The embedded planner: DuckDB, in-process, reads the normalised snapshot, dedupes it and
anti-joins it against confirmed state read from the state database as Arrow.

Imported lazily (only when a run plans), so ``audience-sync --help`` loads neither DuckDB nor
pyarrow.
"""
