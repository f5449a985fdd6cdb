"""A folder of JSON documents, one per task, each written atomically: where the benchmark's measurements live."""

from __future__ import annotations

import json
import os


def lr_key(lr: float) -> str:
    """A learning rate as a JSON key (six significant digits, so a grid point is always the same key)."""
    return f"{lr:.6g}"


class JsonStore:
    """`folder/<name>.json`: `load(name)` (None when absent) and `save(name, doc)` through a private temp file and a
    rename, so a reader (or a second process) never sees half a file. `dump` holds json.dump's formatting options."""

    def __init__(self, folder: str, **dump):
        self.folder = folder
        self.dump = dump or {"separators": (",", ":")}

    def path_of(self, name: str) -> str:
        return os.path.join(self.folder, f"{name}.json")

    def load(self, name: str) -> dict | None:
        path = self.path_of(name)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    def save(self, name: str, doc: dict) -> None:
        os.makedirs(self.folder, exist_ok=True)
        path = self.path_of(name)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, **self.dump)
            f.write("\n")
        os.replace(tmp, path)
