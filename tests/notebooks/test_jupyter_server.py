"""A real JupyterLab server, started by `make lab` itself (the Makefile's recipe, on the test's interpreter's
environment): token auth (JUPYTER_TOKEN) on a loopback port with notebooks/ as its root. Lists the notebooks
through the contents API, runs `import axiom` and a tiny query in a kernel over the kernel's websocket
channel, checks that the API refuses a request without the token, that the lab's defaults come from
jupyter-lab-settings/overrides.json (no "official Jupyter news" pop-up: fetchNews "false"), and shuts down."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.notebooks.conftest import ALL_NOTEBOOKS, REPO, TINY_CORPUS
from tests.support.chroma_server import free_port
from tests.support.waiting import wait_for_http


class Lab:
    def __init__(self, port: int, token: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.port, self.token, self.proc, self.log = port, token, proc, log
        self.base = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.base, timeout=30.0)

    def api(self, method: str, path: str, *, token: bool = True, **kwargs: Any) -> httpx.Response:
        if not token:  # a new client: the server sets a login cookie once a token was accepted
            return httpx.request(method, self.base + path, timeout=30.0, **kwargs)
        return self.http.request(method, path, headers={"Authorization": f"token {self.token}"}, **kwargs)


LAB_SETTINGS = REPO / "jupyter-lab-settings" / "overrides.json"
NOTIFICATION_SETTINGS = "/lab/api/settings/@jupyterlab/apputils-extension:notification"


@pytest.fixture
def lab(tmp_path: Path, clean_kernel_env: None) -> Iterator[Lab]:
    """`make lab` on a free port with the token in JUPYTER_TOKEN, on this interpreter's environment (VENV; its
    install stamp taken as done: nothing is installed), with a fresh Jupyter config and runtime folder."""
    port, token = free_port(), secrets.token_urlsafe(16)
    config = tmp_path / "config"
    config.mkdir()
    # no other port when this one is taken meanwhile: the wait below would look at the wrong one
    (config / "jupyter_server_config.json").write_text(json.dumps({"ServerApp": {"port_retries": 0}}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTER_TOKEN": token}
    venv = Path(sys.prefix)
    log = tmp_path / "lab.log"
    cmd = ["make", "--no-print-directory", "-C", str(REPO), "-o", str(venv / ".installed"), "lab",
           f"VENV={venv}", f"LAB_PORT={port}"]
    with open(log, "wb") as out:  # a session of its own: make and the jupyter it execs end together below
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = Lab(port, token, proc, log)
    try:
        wait_for_http(f"{server.base}/api/status", timeout=90, headers={"Authorization": f"token {token}"},
                      process=proc, log=log, what="jupyter lab (make lab)", interval=0.3)
        yield server
    finally:
        try:
            server.api("POST", "/api/shutdown", timeout=10)
            proc.wait(timeout=20)
        except (httpx.HTTPError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        server.http.close()


def _execute(lab: Lab, kernel_id: str, code: str, timeout: float = 240) -> tuple[str, dict[str, Any]]:
    """Run code on the kernel through the server's websocket channel; return (stdout, execute_reply)."""
    import websocket

    ws = websocket.create_connection(f"ws://127.0.0.1:{lab.port}/api/kernels/{kernel_id}/channels",
                                     header=[f"Authorization: token {lab.token}"], timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request",
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        stdout: list[str] = []
        reply: dict[str, Any] | None = None
        idle = False
        deadline = time.monotonic() + timeout
        while (reply is None or not idle) and time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream" and msg["content"]["name"] == "stdout":
                stdout.append(msg["content"]["text"])
            elif kind == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
            elif kind == "execute_reply":
                reply = msg["content"]
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
        assert reply is not None, "no execute_reply before the timeout"
        return "".join(stdout), reply
    finally:
        ws.close()


@pytest.mark.timeout(400)
def test_jupyter_lab_serves_the_notebooks_and_runs_axiom(lab: Lab, executed: dict[str, Any]) -> None:
    # the token is required, and it reached the server through the environment: on no command line of make's
    argv = _command_lines(lab.proc.pid)
    assert any(b"jupyter-lab" in a or b"jupyter\0lab\0" in a for a in argv), argv
    assert not [a for a in argv if lab.token.encode() in a]
    assert lab.api("GET", "/api/status", token=False).status_code == 403
    assert lab.http.get("/api/status", params={"token": lab.token}).status_code == 200

    # notebooks/ is the root: the contents API lists the four notebooks
    listing = lab.api("GET", "/api/contents").json()
    assert {f"{n}.ipynb" for n in ALL_NOTEBOOKS} <= {item["name"] for item in listing["content"]}
    nb = lab.api("GET", "/api/contents/03_evaluate.ipynb").json()
    assert nb["type"] == "notebook" and nb["content"]["metadata"]["kernelspec"]["name"] == "python3"

    # as JupyterLab starts a notebook's kernel: in the notebook's folder (here notebooks/, the server's root)
    kernel = lab.api("POST", "/api/kernels", json={"name": "python3", "path": ""}).json()
    try:
        # a BM25 query on the store the end-to-end run filled (no embedding model to load: a tiny query)
        code = (
            "import json, os, axiom\n"
            "from axiom.notebook.session import open_session\n"
            f"session = open_session(corpus={str(TINY_CORPUS)!r}, chroma_path={str(executed['store'])!r},\n"
            "                       load_model=False)\n"
            "hits = session.pipeline.retrieve('Which volcano is the largest active one by volume?', "
            "top_k=2,\n"
            "                                 retriever='bm25')\n"
            "print(json.dumps({'version': axiom.__version__, 'sources': [h.source for h in hits],\n"
            "                  'text': hits[0].text, 'cwd': os.getcwd(), 'root': str(session.root),\n"
            "                  'runs_dir': session.settings.evaluation.runs_dir}))\n")
        out, reply = _execute(lab, kernel["id"], code)
        assert reply["status"] == "ok", reply
        result = json.loads(out.strip().splitlines()[-1])
        assert result["sources"][0] == "b.txt" and "Mauna Loa" in result["text"]
        # run by hand (no project_root parameter): the session finds the project through AXIOM_PROJECT_ROOT,
        # which `make lab` sets, anchors relative settings there, and leaves the kernel's working folder alone
        assert Path(result["root"]) == REPO and Path(result["runs_dir"]) == REPO / "evaluation" / "runs"
        assert Path(result["cwd"]) == REPO / "notebooks"
    finally:
        assert lab.api("DELETE", f"/api/kernels/{kernel['id']}").status_code == 204
    assert lab.api("GET", "/api/kernels").json() == []


@pytest.mark.timeout(200)
def test_lab_has_no_news_prompt(lab: Lab) -> None:
    """JupyterLab 4 asks every new user "Would you like to get notified about official Jupyter news?" while
    the notification settings' fetchNews is "none" (its default). `make lab` serves the defaults of
    jupyter-lab-settings/overrides.json: fetchNews "false" (no prompt, no news fetched) and no update
    check."""
    reply = lab.api("GET", NOTIFICATION_SETTINGS)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    props = data["schema"]["properties"]
    assert props["fetchNews"]["default"] == "false", props["fetchNews"]
    assert props["checkForUpdates"]["default"] is False
    assert data["settings"] == {}  # nothing of a user's own: what the browser sees is the overridden default
    # the settings come from the committed file, whose notification settings are exactly these
    assert json.loads(LAB_SETTINGS.read_text())["@jupyterlab/apputils-extension:notification"] == {
        "fetchNews": "false", "checkForUpdates": False}


def _command_lines(session: int) -> list[bytes]:
    """The argv of every process in a session (from /proc: pid (comm) state ppid pgrp session ...)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3]) == session
            ):
                found.append((proc / "cmdline").read_bytes())
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
    return found


def test_the_jupyter_image_serves_the_same_settings() -> None:
    """The jupyter image copies the same file to where JupyterLab reads its defaults from in a venv at
    /opt/venv:
    <sys.prefix>/share/jupyter/lab/settings/overrides.json (LabApp's app_settings_dir, checked here on this
    environment's JupyterLab)."""
    from jupyterlab.labapp import LabApp

    assert Path(LabApp().app_settings_dir) == Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings"
    dockerfile = (REPO / "Dockerfile").read_text()
    stage = re.search(r"^FROM backend AS jupyter$(.*?)^FROM ", dockerfile, re.M | re.S)
    assert stage is not None, "the Dockerfile has no jupyter stage"
    copies = re.findall(r"^COPY (\S+) (\S+)$", stage.group(1), re.M)
    assert ("jupyter-lab-settings/overrides.json",
            "/opt/venv/share/jupyter/lab/settings/overrides.json") in copies
    # the image's environment is /opt/venv: the builder puts it first on PATH, and the runtime stages (jupyter
    # FROM backend FROM builder) inherit it
    venv_first = r"^ENV [^\n]*(\\\n[^\n]*)*PATH=/opt/venv/bin:\$PATH"  # an ENV, continuation lines included
    assert re.search(venv_first, dockerfile, re.M), "no ENV puts /opt/venv/bin first on PATH"
    assert re.search(r"^FROM builder AS backend$", dockerfile, re.M), "the backend is not FROM builder"
