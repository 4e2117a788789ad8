# Axiom Workbench images. Three targets share one runtime:
#   backend  `axiom serve`: health + metrics sidecar on 5000, query API on 8000
#   jupyter  the same runtime running JupyterLab on 8888 (token from JUPYTER_TOKEN)
#   cluster  the backend runtime plus Ray (the `ray` extra and Ray's dashboard) for compose's `cluster` profile:
#            a Ray head or worker node (DOCKER_SETUP.md, "A Ray cluster"); needs requirements/cluster.lock.txt
#
#   docker build --target backend -t axiom-workbench:backend .
#   docker build --target jupyter -t axiom-workbench:jupyter .
#   docker build --target cluster -t axiom-workbench:cluster .
#
# Always name the target: the last stage (cluster) is what a build without --target makes. The cluster stages come
# after the others, so the classic builder (which builds every stage before the target) builds backend and jupyter
# exactly as before, without Ray and without reading the cluster lock.
#
# Plain Dockerfile instructions only (no RUN --mount, no syntax directive): the legacy builder and BuildKit
# both build it. Build arguments (none of them is a secret; no key or token is ever an ARG or ENV here):
#   TORCH_INDEX_URL  the one index torch is installed from, with wheels/ (default: PyTorch's CPU index; never PyPI
#                    besides it, whose torch is a CUDA build of several GB; when it is unreachable the build stops
#                    within seconds). Empty: torch from wheels/ or the configured indexes, with the other packages
#   PIP_NO_INDEX     set to 1 for a fully offline build from wheels/ alone (see DOCKER_SETUP.md)
# wheels/ (empty in git) is always used as --find-links: drop wheels there to build without the network.

# ---------------------------------------------------------------------------------------------------------
# builder: the runtime's virtual environment, /opt/venv, with every locked runtime dependency and nothing else.
# The runtime stages start FROM it, so its 2.5 GB (about 60,000 files) are written once: copying them into a fresh
# base (COPY --from) cost the classic builder another 107 s of a 386 s cold build here (measured 2026-12-07), with
# nothing gained, since neither stage has compilers. What else stays in the image's history from here: the lock
# (/build) and wheels/ (/wheels): empty in git, but a build from wheels/ (offline, or the container test's torch
# wheel) carries those wheels in one layer (torch's CPU wheel: about 180 MB).
FROM python:3.11-slim AS builder

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
ARG PIP_NO_INDEX
# wheels/ as pip's find-links for the installs below only (an ARG: not in the image's environment)
ARG PIP_FIND_LINKS=/wheels

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

WORKDIR /build
RUN python -m venv /opt/venv

# The runtime dependencies exactly as locked: requirements/runtime.lock.txt pins every package, torch's CPU build
# (TORCH_VERSION+cpu) included, with the sha256 of its files, and pip installs no file whose hash is not listed
# there, whichever index or wheels/ it comes from (the lock holds no CUDA package either). --no-deps: the lock holds
# every package, so pip resolves nothing; without it, the base image's bundled pip (23.0.1 in Debian's) re-reads a
# locked package's own requirements (chromadb's `uvicorn[standard]`) as unpinned and stops the build as soon as
# PyPI has a newer release; `pip check` proves the lock complete. `make lock`
# writes the lock; tests/test_lock.py checks it against pyproject.toml. These layers (and the venv the runtime
# copies) survive every edit of the code, the README and pyproject.toml (only the lock is copied for them). Then
# out go torch's C++ headers and C++ test binaries and the packages' own test suites (`tests` folders): about
# 340 MB that nothing imports at run time.
COPY wheels/ /wheels/
COPY requirements/runtime.lock.txt ./
# torch first, from TORCH_INDEX_URL ALONE (--index-url, plus wheels/ as find-links; never PyPI, whose torch is a
# CUDA build of several GB), with the lock's hash, no dependencies (the next step installs them, and finds torch
# in place). Few retries and a short timeout: an unreachable index stops the build within seconds, naming the
# way out, rather than after every other package of the lock has waited on it. Empty TORCH_INDEX_URL: nothing
# here, torch comes with the lock from wheels/ or the configured indexes.
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        awk '/^torch==/ { found = 1 } found { print } found && !/\\$/ { exit }' runtime.lock.txt > torch.lock.txt \
        && grep -q "^torch==${TORCH_VERSION}+cpu " torch.lock.txt \
        && if ! pip install --no-cache-dir --no-deps --require-hashes --retries 2 --timeout 15 \
                --index-url "$TORCH_INDEX_URL" -r torch.lock.txt; then \
            echo "ERROR: torch==${TORCH_VERSION} (CPU build) could not be installed from TORCH_INDEX_URL=${TORCH_INDEX_URL}: unreachable from this build, or without that file. Nothing was taken from PyPI, whose torch is a CUDA build of several GB. Way out: put the CPU wheel of torch ${TORCH_VERSION} in wheels/ and build with an empty TORCH_INDEX_URL (docker compose --parallel 1 build --build-arg TORCH_INDEX_URL=), or set TORCH_INDEX_URL to a reachable mirror of the CPU index; see DOCKER_SETUP.md, Building offline." >&2; \
            exit 1; \
        fi; \
    fi
RUN pip install --no-cache-dir --no-deps --require-hashes -r runtime.lock.txt \
    && pip check \
    && rm -rf /opt/venv/lib/python3.11/site-packages/torch/include /opt/venv/lib/python3.11/site-packages/torch/test \
    && find /opt/venv/lib/python3.11/site-packages -type d -name tests -prune -exec rm -rf {} +

# ---------------------------------------------------------------------------------------------------------
# app-wheel: the package itself as a wheel (its sources stay in this stage); the runtime installs it on top of the
# builder's venv (a small layer).
FROM builder AS app-wheel
# build arguments are per stage: the offline switch and wheels/ again, for the build backend
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS=/wheels
COPY pyproject.toml ./
COPY README.md ./
COPY axiom/ axiom/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# ---------------------------------------------------------------------------------------------------------
# backend: the runtime: the builder's venv, the app's wheel installed into it, the settings file; no compilers,
# no pip cache, no sources.
FROM builder AS backend

# (PATH, with /opt/venv/bin first, and pip's settings come from the builder)
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AXIOM_CONFIG=/app/config.yaml \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False \
    RAGAS_DO_NOT_TRACK=true \
    MPLBACKEND=Agg \
    HOME=/home/axiom

# The image runs as UID 1000 (axiom) by default and as any other UID:GID as well (compose's
# `user: ${AXIOM_UID}:${AXIOM_GID}`, `docker run --user`), which needs no passwd entry and no useradd at run time:
# HOME is set here rather than looked up, and HOME and the folders the app writes to in the image (/app, /app/.axiom,
# and logs/ evaluation/ notebooks/ when nothing is mounted there) are writable by every user, with the sticky bit,
# as /tmp is. So every cache under HOME (matplotlib, Hugging Face, IPython, Jupyter's runtime and settings) works
# for whichever UID runs the container. Bind mounts keep the host's owner and mode: run as the host user who owns
# ./logs and ./evaluation (DOCKER_SETUP.md).
RUN groupadd --gid 1000 axiom \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/axiom --shell /bin/bash axiom \
    && mkdir -p /app/data /app/logs /app/notebooks /app/evaluation/runs /app/.axiom \
    && chown -R axiom:axiom /app \
    && chmod 1777 /home/axiom /app /app/logs /app/notebooks /app/evaluation /app/evaluation/runs /app/.axiom \
    && rm -rf /var/lib/apt/lists/*

COPY --from=app-wheel /dist/ /tmp/dist/
# Install the app, then prove the packaged embedding model loads and embeds with no network.
RUN pip install --no-cache-dir --disable-pip-version-check --no-index --no-deps /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && HOME=/tmp/build-home python -c "from axiom.embeddings import LocalEmbedder; print('embedding check', LocalEmbedder('all-MiniLM-L6-v2').embed(['ok']).shape)" \
    && rm -rf /tmp/build-home
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

# JupyterLab's default settings, as `make lab` gives them (jupyter-lab-settings/overrides.json, read from the
# environment's share/jupyter/lab/settings): no "get notified about official Jupyter news?" pop-up for every new
# user, no news fetched and no update check (an offline workbench); a user can still turn them on.
COPY jupyter-lab-settings/overrides.json /opt/venv/share/jupyter/lab/settings/overrides.json

EXPOSE 8888
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8888/api', timeout=4).status == 200 else 1)"]
CMD ["sh", "-c", "if [ -z \"$JUPYTER_TOKEN\" ]; then echo 'JUPYTER_TOKEN is required and must not be empty (set it in .env)' >&2; exit 64; fi; exec jupyter lab --no-browser --ip=0.0.0.0 --port=8888 --ServerApp.root_dir=/app --LabApp.extension_manager=readonly"]

# ---------------------------------------------------------------------------------------------------------
# cluster-builder: Ray on top of the builder's venv, as a folder of its own holding only what the runtime lacks.
# requirements/cluster.lock.txt pins (with sha256) everything the `ray` extra of pyproject.toml needs, plus
# ray[default] for the dashboard, at the versions of requirements/lock.txt (`make lock`). It may repeat the runtime's
# packages: the one-line script below keeps only the blocks of the lock whose package is not installed in /opt/venv
# (and stops the build, naming them, if the lock pins an installed package at another version), so the runtime's
# own packages (torch included) are neither downloaded nor copied again; pip installs the rest hash-checked, without
# resolving anything beyond the lock (--no-deps), into /opt/cluster-site. `pip check` over the venv plus that folder
# proves the lock was complete.
FROM builder AS cluster-builder
# build arguments are per stage: the offline switch and wheels/ again, for the Ray packages
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS=/wheels

COPY requirements/cluster.lock.txt ./
RUN python -c "import re, sys, importlib.metadata as md; norm = lambda s: re.sub(r'[-_.]+', '-', s).lower(); have = {norm(d.metadata['Name']): d.version for d in md.distributions()}; blocks = re.findall(r'^[A-Za-z0-9][^\n]*\n(?:[ \t]+[^\n]*\n)*', open(sys.argv[1]).read(), re.M); pins = [(norm(b.split('==')[0].split('[')[0]), b.split('==')[1].split()[0], b) for b in blocks]; clash = [f'{n}=={v} (runtime: {have[n]})' for n, v, b in pins if n in have and have[n] != v]; sys.exit('cluster.lock.txt disagrees with runtime.lock.txt, run make lock: ' + ', '.join(clash)) if clash else sys.stdout.write(''.join(b for n, v, b in pins if n not in have))" cluster.lock.txt > cluster-only.lock.txt \
    && grep -q "^ray==" cluster-only.lock.txt \
    && pip install --no-cache-dir --no-deps --require-hashes --target /opt/cluster-site -r cluster-only.lock.txt \
    && mkdir -p /opt/cluster-site/bin \
    && mv /opt/cluster-site/bin /opt/cluster-bin \
    && PYTHONPATH=/opt/cluster-site pip check \
    && find /opt/cluster-site -type d -name tests -prune -exec rm -rf {} +

# ---------------------------------------------------------------------------------------------------------
# cluster: the backend runtime (same user, HOME, folders, model, settings) plus Ray: a Ray head or worker node of
# compose's `cluster` profile, which gives the `ray start` command line. One small layer on top of the backend's.
# Ray's ports (GCS 6379, dashboard 8265, the nodes' own) are for the cluster's private network only: publish the
# dashboard on loopback at most. RAY_AUTH_MODE=token (compose sets it, with RAY_AUTH_TOKEN) makes every node, the
# dashboard and every driver require the token.
FROM backend AS cluster

# Ray gives a node's agents and its worker processes short deadlines to register (tens of seconds); on a busy machine
# (nodes importing Ray while others load the model) a node misses them and never joins. Two minutes each.
ENV RAY_USAGE_STATS_ENABLED=0 \
    RAY_DISABLE_DOCKER_CPU_WARNING=1 \
    RAY_agent_register_timeout_ms=120000 \
    RAY_worker_register_timeout_seconds=120

COPY --from=cluster-builder /opt/cluster-site/ /opt/venv/lib/python3.11/site-packages/
COPY --from=cluster-builder /opt/cluster-bin/ /opt/venv/bin/
RUN pip check \
    && python -c "import ray, ray.data, ray.dashboard.optional_deps; print('ray', ray.__version__, 'with Ray Data and the dashboard')"

EXPOSE 6379 8265
# Ready once `ray start` has started the node (it then writes /tmp/ray/ray_current_cluster) and the head's control
# store answers; cheaper than `ray status`, which imports Ray. Compose's cluster profile gives its own (workers).
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, socket; socket.create_connection(('127.0.0.1', 6379), timeout=4).close(); raise SystemExit(0 if os.path.exists('/tmp/ray/ray_current_cluster') else 1)"]
CMD ["sh", "-c", "rm -f /tmp/ray/ray_current_cluster; exec ray start --head --block --port=6379 --num-cpus=0 --dashboard-host=0.0.0.0 --disable-usage-stats"]
