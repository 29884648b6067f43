"""Parity checks against Apache Flink itself (docs/parity.md).

`parity.flink_tables` runs the Flink SQL transcription of SPEC 2 on a dataset directory
in a separate virtualenv (`make flink-venv`); `parity.compare` diffs two directories of
per-table JSON Lines. Everything except `flink_tables` is standard library only, so it
runs from either virtualenv.
"""
