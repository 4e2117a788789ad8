"""A stand-in embedding model whose first use "loads" slowly, like a real lazily loaded model.

Vectors are hashed bags of words (deterministic, L2-normalised), so retrieval and the extractive generator
work on them. The first call of `dimension`, `embed` or `count_tokens` sleeps `load_seconds` (the model load);
every event is recorded in `events` (and, with `marker`, written to stderr at the time of the call) so a test
can see what happened in which order.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Sequence

import numpy as np

DIMENSION = 64


class SlowLoadingEmbedder:
    def __init__(self, load_seconds: float = 1.0, *, model_id: str = "fake-hashed-bow-64",
                 marker: bool = False) -> None:
        self.model_id = model_id
        self.load_seconds = load_seconds
        self.marker = marker
        self.loaded = False
        self.events: list[tuple[str, int]] = []  # ("load", 0) then ("embed", n texts)

    def _load(self) -> None:
        if not self.loaded:
            time.sleep(self.load_seconds)
            self.loaded = True
            self.events.append(("load", 0))

    @property
    def dimension(self) -> int:
        self._load()
        return DIMENSION

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self._load()
        self.events.append(("embed", len(texts)))
        if self.marker:
            print(f"EMBED {len(texts)}", file=sys.stderr, flush=True)
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, hashlib.sha256(word.encode()).digest()[0] % DIMENSION] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms

    def count_tokens(self, text: str) -> int:
        self._load()
        return max(1, len(text.split()))
