"""Axiom on a Ray cluster (the optional `ray` extra: `pip install 'axiom-workbench[ray]'`; `make install` has
it).

Ray is imported only in this package (import-linter contract `owner-ray`) and only when a command asks for it:
without the extra every other command works as before.

- `runtime.py`: the door to Ray (`import_ray`, `ray_session`);
- `ingest.py` + `embedder.py`: `axiom ingest --ray ADDRESS`: the chunks are embedded on the cluster's actors
  while the driver keeps discovery, reading, hashing, chunking and the store writes (`RAGPipeline.ingest`,
  unchanged);
- `sweep.py`: `axiom sweep --ray ADDRESS`: each grid point's notebooks as a Ray task.
"""
