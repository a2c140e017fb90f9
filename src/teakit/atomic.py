"""Atomic file writes (a reader sees the old file or the new one, never a partial one),
and a JSON reader whose errors name the file.

The data goes to a hidden temporary file in the same folder, is flushed and
fsynced, then ``os.replace``-d over the target; the folder is fsynced after.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, tag: str = "") -> None:
    """Write ``data`` to ``path`` atomically; ``tag`` keeps concurrent writers' temp files apart."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{tag}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def read_json_object(path: Path, what: str, hint: str = "") -> dict:
    """The JSON object in ``path``; errors name ``what`` the file is, the path and ``hint``."""
    path = Path(path)
    suffix = f"; {hint}" if hint else ""
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} does not exist{suffix}")
    try:
        obj = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{what}: {path} is not valid JSON ({e}){suffix}") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{what}: {path} does not hold a JSON object{suffix}")
    return obj


def atomic_write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    """Write ``rows`` (dicts with the keys ``fields``) as a CSV file with a header, atomically."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())
