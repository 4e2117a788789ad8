"""The judge's on-disk cache: successful judgements by sha256 of (metric, model, inputs)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_FORMAT = 1

# one judgement's inputs: ragas's `ascore` keyword arguments (question, answer, contexts, reference), which
# also make its cache key
JudgeInputs = dict[str, str | list[str] | None]

_CACHE_FOLDER = re.compile(r"[0-9a-f]{2}")


class JudgeCache:
    """One JSON file per judgement under `root/<2 hex>/<sha256>.json`, written atomically. Private to its
    owner (it holds questions, answers and references): files 0600, `root` and its folders 0700; a `root` left
    more open by an older version is tightened on the first write when it holds nothing but cache folders."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_checked = False

    def _private_dir(self, path: Path) -> None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_mode & 0o777 != 0o700:
            if path == self.root and not all(_CACHE_FOLDER.fullmatch(p.name) for p in path.iterdir()):
                # holds other things than cache entries (judge_cache_dir pointed at a shared folder): leave it
                log.warning("judge cache folder %s is readable by others; its entries stay private (0600)",
                            path)
                return
            try:
                path.chmod(0o700)
            except OSError as exc:  # not ours: say so, but keep judging (the files themselves are 0600)
                log.warning("judge cache folder %s is not private and cannot be made so (%s)", path, exc)

    @staticmethod
    def key(metric: str, model: str, inputs: JudgeInputs) -> str:
        blob = json.dumps({"format": CACHE_FORMAT, "metric": metric, "model": model, "inputs": inputs},
                          sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("judge cache entry %s unreadable (%s); judging again", path, exc)
            return None
        return data if isinstance(data, dict) and "value" in data else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        path = self._path(key)
        if not self._root_checked:
            self._private_dir(self.root)
            self._root_checked = True
        if not path.parent.is_dir() or path.parent.stat().st_mode & 0o777 != 0o700:
            self._private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(json.dumps(record, ensure_ascii=False, allow_nan=True))
        os.replace(tmp, path)
