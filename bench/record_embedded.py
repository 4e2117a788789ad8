"""`python -m bench.record_embedded OUT.json -- AXIOM ARGS...`: run an `axiom` command and record every text
the embedding model itself was asked to embed (memo and disk-cache hits are not recorded: they cost no model
work), in order. The evaluation floor (bench/eval_floor_worker.py) then encodes exactly these texts.

Not timed: the timed runs call the plain `axiom` command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        print("usage: python -m bench.record_embedded OUT.json -- AXIOM ARGS...", file=sys.stderr)
        return 2
    out, axiom_args = Path(argv[0]), argv[2:]
    import axiom.embeddings as embeddings
    from axiom.cli import main as axiom_main

    texts: list[str] = []
    calls: list[int] = []
    original = embeddings.LocalEmbedder.embed

    def recording_embed(self: embeddings.LocalEmbedder, batch: list[str]) -> object:
        texts.extend(batch)
        calls.append(len(batch))
        return original(self, batch)

    embeddings.LocalEmbedder.embed = recording_embed  # type: ignore[method-assign]
    code = axiom_main(axiom_args)
    out.write_text(json.dumps({"texts": texts, "calls": calls, "exit": code}))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
