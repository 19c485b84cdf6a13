"""Logs of one JSON object per line (per epoch, per benchmark case)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class JsonLines:
    """Writer of one JSON object per line; the file is emptied when the writer is made."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
