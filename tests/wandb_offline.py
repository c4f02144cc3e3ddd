"""Reading an offline W&B run back: the records of its `run-<id>.wandb` file.

The file is W&B's write-ahead log: a 7-byte header (":W&B", a 2-byte magic, a version byte),
then LevelDB's log format, 32 KiB blocks of chunks, each with a 7-byte header (CRC32C, length,
type: 1 full, 2 first, 3 middle, 4 last; a block's last < 7 bytes are padding). Each record is a
`wandb_internal_pb2.Record` protocol buffer. wandb itself reads these files only in its Go core,
so the test reads them here."""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def raw_records(path: Path):
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    position, pending = 7, b""
    while position + CHUNK_HEADER <= len(data):
        left_in_block = BLOCK - position % BLOCK
        if left_in_block < CHUNK_HEADER:
            position += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position : position + CHUNK_HEADER])
        position += CHUNK_HEADER
        chunk = data[position : position + length]
        position += length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk


def read_offline_run(run_folder: Path) -> dict:
    """{'run': the run record, 'config': {key: value}, 'history': [{key: value}], 'summary':
    {key: value}, 'files': [path]} of an offline run folder (offline-run-...)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = Path(run_folder).glob("run-*.wandb")
    found = {"run": None, "config": {}, "history": [], "summary": {}, "files": []}
    for raw in raw_records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            found["run"] = record.run
            for item in record.run.config.update:
                found["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                found["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            found["history"].append(
                {_key(i): json.loads(i.value_json) for i in record.history.item}
            )
        elif kind == "summary":
            for item in record.summary.update:
                found["summary"][_key(item)] = json.loads(item.value_json)
        elif kind == "files":
            found["files"] += [f.path for f in record.files.files]
    return found


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)
