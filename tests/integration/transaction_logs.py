"""What the broker's own logs say about one test's transactional offsets, for a failure
report.

A topology that stalls after a broker restart has been seen waiting on a group whose
committed offsets the broker never again answers as stable (UNSTABLE_OFFSET_COMMIT):
the group coordinator still holds offsets of a transaction it saw no end marker for.
The evidence is in `__consumer_offsets` (the offset commits, each batch with its
producer id, and the end markers) and in `__transaction_state` (what the transaction
coordinator decided). Kafka's DumpLogSegments decodes both from the log files, so the
report shows which producer's transaction was left open and how it ended for the
coordinator.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from processor.local import jvm, maven

_PRODUCER_ID = re.compile(r"producerId: (-?\d+)")
_FIELD = re.compile(r"(\w+): (\S+)")
_HEADER_FIELDS = ("baseOffset", "producerId", "producerEpoch", "isTransactional", "isControl")
_TIMEOUT_S = 120


def transaction_evidence(kafka_data: Path, run_prefix: str, limit: int) -> list[str]:
    """The last `limit` lines of each log about the test's groups and transactional ids
    (named `run_prefix…`), with the end markers of their producers."""
    offsets = _dump(kafka_data, "__consumer_offsets", "--offsets-decoder")
    states = _dump(kafka_data, "__transaction_state", "--transaction-log-decoder")
    # Of the offsets log only the transactional batches: the group joins are in broker.log.
    lines = _batches_naming(offsets, run_prefix, transactional_only=True)[-limit:]
    return lines + _batches_naming(states, run_prefix, transactional_only=False)[-limit:]


def _dump(kafka_data: Path, topic: str, decoder: str) -> list[str]:
    segments = sorted(str(path) for path in kafka_data.glob(f"{topic}-*/*.log"))
    if not segments:
        return []
    argv = [str(jvm.find_java().executable), "-cp", maven.KAFKA_TOOLS.classpath()]
    argv += ["org.apache.kafka.tools.DumpLogSegments", decoder, "--print-data-log"]
    argv += ["--files", ",".join(segments)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT_S)
    return result.stdout.splitlines() + result.stderr.splitlines()[-5:]


def _batches_naming(lines: list[str], run_prefix: str, transactional_only: bool) -> list[str]:
    """Each batch (its header and records) with a record naming `run_prefix`, and every
    control batch (an end marker) of a producer seen in one of those."""
    batches: list[list[str]] = []
    for line in lines:
        if line.startswith("baseOffset:") or not batches:
            batches.append([line])
        else:
            batches[-1].append(line)
    named = [
        any(run_prefix in line for line in batch[1:])
        and (not transactional_only or "isTransactional: true" in batch[0])
        for batch in batches
    ]
    producers = {_producer(batch[0]) for batch, name in zip(batches, named, strict=True) if name}
    wanted = [
        batch
        for batch, name in zip(batches, named, strict=True)
        if name or ("isControl: true" in batch[0] and _producer(batch[0]) in producers - {None})
    ]
    return [line for batch in wanted for line in [_compact(batch[0]), *batch[1:]]]


def _producer(header: str) -> str | None:
    match = _PRODUCER_ID.search(header)
    return match.group(1) if match else None


def _compact(header: str) -> str:
    """A batch header's fields that tell one producer's transaction from another's."""
    fields = dict(_FIELD.findall(header))
    return " ".join(f"{name}: {fields[name]}" for name in _HEADER_FIELDS if name in fields)
