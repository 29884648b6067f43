"""Parity check against Apache Flink itself (docs/parity.md).

`parity.flink_tables` runs the Flink SQL transcription of SPEC 2 (`parity/sql/`) on a
dataset directory in the separate Flink virtualenv (`make flink-venv`); `parity.dataset`
and `parity.jsonl`, which it uses, are standard library only. `parity.run`, in the
project's virtualenv, runs it, our pipeline and the reference model on the same datasets
and compares them (`make parity`).
"""
