"""Append-only JSONL outputs that survive a kill: a stage writes each row as soon as it is
made, and a rerun skips the ids already written (`resume`). A stage's `.meta.json` records the
config hash it was made with; rerunning with a different config is refused unless the caller
restarts, so one file never mixes two configurations."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from charter.errors import ConfigError


def resume(path: Path, stage_hash: str, *, restart: bool, what: str) -> set[str]:
    """The ids already in `path` (a rerun continues), after checking its meta file."""
    meta = path.with_suffix(".meta.json")
    if restart:
        for p in (path, meta):
            p.unlink(missing_ok=True)
    if path.exists() and meta.exists():
        recorded = json.loads(meta.read_text()).get("config_hash")
        if recorded != stage_hash:
            raise ConfigError(
                f"{path} was made with a different config ({what}); use --restart to start "
                "it over, or another run.out_dir"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"config_hash": stage_hash}) + "\n")
    done: set[str] = set()
    if path.exists():
        good = 0
        with path.open("rb") as f:
            for raw in f:
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError:
                    break  # a line cut by a kill: dropped below, remade on this run
                done.add(row["id"])
                good += len(raw)
        if good != path.stat().st_size:
            with path.open("r+b") as f:
                f.truncate(good)
    return done


def append(f: Any, row: dict[str, Any]) -> None:
    f.write(json.dumps(row, ensure_ascii=False) + "\n")
    f.flush()
    os.fsync(f.fileno())


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise ConfigError(f"{path}: not found (run the stage that makes it first)")
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{i}: not valid JSON: {exc.msg}") from None
    return rows
