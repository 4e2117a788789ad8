"""The attacker of the ingest race tests (issue 24), run as its own process so it truly races the reader.

`make_tree(base)` lays out a data root holding `doc.txt` and `sub/doc.txt` (harmless text) and, beside each, a
hidden symlink out of the root (`.swap-file` -> outside/secret.txt, `.swap-sub` -> the outside folder, whose
doc.txt holds the canary). `python -m tests.core.race_swapper DATA STOP_FILE SECONDS` then exchanges each name
with its link, again and again, atomically (`renameat2(RENAME_EXCHANGE)` through ctypes: the file variant and
the folder variant of the review), until STOP_FILE exists or SECONDS pass; it leaves the tree as it found it
and prints `{"swaps": N}`.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CANARY = b"OUTSIDE-CANARY-91c2 the secret that lives outside the data root."
GOOD = b"Lighthouses use Fresnel lenses to throw their beam far out to sea."
GOOD_SUB = b"Fresnel lenses are built from concentric rings of glass prisms."
RENAME_EXCHANGE = 2
AT_FDCWD = -100
PAIRS = (("doc.txt", ".swap-file"), ("sub", ".swap-sub"))


def make_tree(base: Path) -> tuple[Path, Path]:
    """(the data root, the outside folder)."""
    data, outside = base / "data", base / "outside"
    (data / "sub").mkdir(parents=True)
    outside.mkdir()
    (data / "doc.txt").write_bytes(GOOD)
    (data / "sub" / "doc.txt").write_bytes(GOOD_SUB)
    (outside / "secret.txt").write_bytes(CANARY)
    (outside / "doc.txt").write_bytes(CANARY)
    (data / ".swap-file").symlink_to(outside / "secret.txt")
    (data / ".swap-sub").symlink_to(outside)
    return data, outside


def _exchange() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = libc.renameat2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    return renameat2


def swap_forever(data: Path, stop: Path, seconds: float) -> int:
    renameat2 = _exchange()
    names = [(str(data / a).encode(), str(data / b).encode()) for a, b in PAIRS]
    swaps, deadline = 0, time.monotonic() + seconds
    while not stop.exists() and time.monotonic() < deadline:
        for _ in range(50):
            for a, b in names:
                if renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err), a.decode())
                swaps += 1
    for (a, b), (name, _) in zip(names, PAIRS, strict=True):  # leave each name on its real file or folder
        if (data / name).is_symlink():
            renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
    return swaps


def start(data: Path, stop: Path, seconds: float) -> subprocess.Popen[str]:
    repo = Path(__file__).resolve().parents[2]
    return subprocess.Popen([sys.executable, "-m", "tests.core.race_swapper", str(data), str(stop),
                             str(seconds)],
                            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(repo)})


def finish(proc: subprocess.Popen[str], stop: Path) -> int:
    """Stop the swapper and return how many exchanges it made (fails if it failed)."""
    stop.touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    return int(json.loads(out.strip().splitlines()[-1])["swaps"])


if __name__ == "__main__":
    print(json.dumps({"swaps": swap_forever(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))}))
