# Axiom Workbench images. Two targets share one runtime:
#   backend  `axiom serve`: health + metrics sidecar on 5000, query API on 8000
#   jupyter  the same runtime running JupyterLab on 8888 (token from JUPYTER_TOKEN)
#
#   docker build --target backend -t axiom-workbench:backend .
#   docker build --target jupyter -t axiom-workbench:jupyter .
#
# Plain Dockerfile instructions only (no RUN --mount, no syntax directive): the legacy builder and BuildKit
# both build it. Build arguments (none of them is a secret; no key or token is ever an ARG or ENV here):
#   TORCH_INDEX_URL  extra index for the CPU build of torch (default: PyTorch's CPU index; empty: none, torch
#                    then comes from wheels/ or PyPI)
#   PIP_NO_INDEX     set to 1 for a fully offline build from wheels/ alone (see DOCKER_SETUP.md)
# wheels/ (empty in git) is always used as --find-links: drop wheels there to build without the network.

# ---------------------------------------------------------------------------------------------------------
# builder: one virtual environment with the project and its runtime dependencies, nothing else
FROM python:3.11-slim AS builder

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
ARG PIP_NO_INDEX

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_FIND_LINKS=/wheels \
    PATH=/opt/venv/bin:$PATH

WORKDIR /build
RUN python -m venv /opt/venv

# torch first, pinned to its CPU build: an open torch requirement resolves to a multi-GB CUDA build.
COPY wheels/ /wheels/
RUN if [ -n "$TORCH_INDEX_URL" ]; then export PIP_EXTRA_INDEX_URL="$TORCH_INDEX_URL"; fi \
    && pip install --no-cache-dir "torch==${TORCH_VERSION}" \
    && python -c "import torch, sys; sys.exit('torch is a CUDA build' if torch.version.cuda else 0)"

# The dependencies from pyproject.toml in one resolve: this layer (and the venv the runtime copies) survives
# every edit of the code and of the README (only pyproject.toml is copied for it). Then out go torch's C++
# headers and C++ test binaries and the packages' own test suites (`tests` folders): about 340 MB that nothing
# imports at run time.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install --no-cache-dir -r requirements.txt \
    && pip check \
    && rm -rf /opt/venv/lib/python3.11/site-packages/torch/include /opt/venv/lib/python3.11/site-packages/torch/test \
    && find /opt/venv/lib/python3.11/site-packages -type d -name tests -prune -exec rm -rf {} +

# The package itself as a wheel; the runtime installs it on top of the copied venv (a small layer).
COPY README.md ./
COPY axiom/ axiom/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# ---------------------------------------------------------------------------------------------------------
# backend: the runtime. Only the venv, the app's wheel and the settings file come from the build; no
# compilers, no pip cache.
FROM python:3.11-slim AS backend

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AXIOM_CONFIG=/app/config.yaml \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False \
    RAGAS_DO_NOT_TRACK=true \
    MPLBACKEND=Agg

RUN groupadd --gid 1000 axiom \
    && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash axiom \
    && mkdir -p /app/data /app/logs /app/notebooks /app/evaluation/runs /app/.axiom \
    && chown -R axiom:axiom /app \
    && rm -rf /var/lib/apt/lists/*

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /dist/ /tmp/dist/
# Install the app, then prove the packaged embedding model loads and embeds with no network.
RUN pip install --no-cache-dir --disable-pip-version-check --no-index --no-deps /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && python -c "from axiom.embeddings import LocalEmbedder; print('embedding check', LocalEmbedder('all-MiniLM-L6-v2').embed(['ok']).shape)"
COPY --chown=axiom:axiom config.yaml /app/config.yaml

WORKDIR /app
USER 1000:1000

EXPOSE 5000 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4).status == 200 else 1)"]
CMD ["axiom", "serve", "--host", "0.0.0.0"]

# ---------------------------------------------------------------------------------------------------------
# jupyter: the backend runtime serving JupyterLab (which is a project dependency, already in the venv).
# JUPYTER_TOKEN is required at run time: the server refuses to start without it, and Jupyter reads it from the
# environment itself, so it never appears on a command line, in a log or in this image.
FROM backend AS jupyter

ENV JUPYTER_PORT=8888 \
    SHELL=/bin/bash

EXPOSE 8888
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8888/api', timeout=4).status == 200 else 1)"]
CMD ["sh", "-c", "if [ -z \"$JUPYTER_TOKEN\" ]; then echo 'JUPYTER_TOKEN is required and must not be empty (set it in .env)' >&2; exit 64; fi; exec jupyter lab --no-browser --ip=0.0.0.0 --port=8888 --ServerApp.root_dir=/app --LabApp.extension_manager=readonly"]
