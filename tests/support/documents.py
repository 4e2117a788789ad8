"""Load documents the way ingest reads them, for tests that check the reader without a store.

`Pipeline.ingest` reads each discovered file with `documents.read_bytes`, hashes it and `documents.parse`s it,
turning a DocumentError into a skipped file with its reason; this does the same for a whole list of paths and
returns the documents instead of chunking and storing them. (The same as `axiom.documents.load_documents`,
which nothing but tests uses and which goes once no test imports it from there.)"""

from __future__ import annotations

import os
from collections.abc import Iterable

from axiom.documents import discover, parse, read_bytes, sha256_bytes
from axiom.errors import DocumentError
from axiom.types import Document, SkippedFile


def load_documents(paths: Iterable[str | os.PathLike[str]], *, max_file_size_mb: float = 20.0,
                   extensions: Iterable[str] = (".txt", ".md", ".pdf"), follow_symlinks: bool = False
                   ) -> tuple[list[Document], list[SkippedFile]]:
    """Every readable file under `paths` as a Document, and the skipped files with their reasons."""
    files, skipped = discover(paths, extensions, follow_symlinks=follow_symlinks)
    docs: list[Document] = []
    for file in files:
        try:
            data = read_bytes(file, max_file_size_mb)
            docs.append(parse(file, data, sha256_bytes(data)))
        except DocumentError as exc:
            skipped.append(SkippedFile(exc.path, exc.reason))
    return docs, skipped
