"""Upstream's own client judges the backend double and the collection's Convex client.

The real `convex` CLI from the npm registry (tests/cli/versions; installed by tests/cli/install.sh, which
`make deps` runs) talks to a convex-backend double started as a local process: `env set/list/get/remove`,
`export` (zip downloaded and opened), `import --replace-all` of that zip, `data`. What the CLI reads must be
what the collection's module_utils read (ConvexClient.list_env, export_snapshot), and the other way round.
The stack scenario runs the same commands through Caddy against a deployed lab stack.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# tests/conftest.py makes the collection importable.
from ansible_collections.owlat.selfhost.plugins.module_utils._convex import ConvexClient  # noqa: E402
from ansible_collections.owlat.selfhost.plugins.module_utils._convex_export import (  # noqa: E402
    export_snapshot,
    import_snapshot,
)

DOUBLES = ROOT / "tests/doubles"
TOOLS = ROOT / ".tools/convex-cli"
SECRET = "cd" * 32


def cli_versions() -> list[str]:
    out = []
    for line in (ROOT / "tests/cli/versions").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            out.append(line.split()[0])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=cli_versions())
def convex(request):
    run = TOOLS / request.param / "run"
    if not run.exists():
        # Not a skip: `make deps` installs the CLI; a test run without it must not pass silently.
        pytest.fail(f"convex CLI {request.param} is not installed: run tests/cli/install.sh (make deps)")
    return request.param, str(run)


@pytest.fixture
def backend(tmp_path):
    api, site = free_port(), free_port()
    env = {"PATH": os.environ["PATH"], "OWLAT_DOUBLE_PORTS": f"{api},{site}", "OWLAT_DOUBLE_DATA": str(tmp_path / "d"),
           "INSTANCE_SECRET": SECRET, "PYTHONDONTWRITEBYTECODE": "1"}
    log = open(tmp_path / "backend.log", "wb")
    proc = subprocess.Popen([sys.executable, str(DOUBLES / "convex-backend/server.py")], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", api), timeout=0.2).close()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                raise AssertionError((tmp_path / "backend.log").read_text())
            time.sleep(0.05)
    key = subprocess.run(["sh", str(DOUBLES / "convex-backend/generate_admin_key.sh")], env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    yield {"url": f"http://127.0.0.1:{api}", "key": key, "log": tmp_path / "backend.log"}
    proc.send_signal(signal.SIGINT)  # the backend ignores SIGTERM, as upstream's
    proc.wait(10)
    log.close()


def run_cli(convex, backend, *args, timeout=60):
    version, run = convex
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
           "CONVEX_SELF_HOSTED_URL": backend["url"], "CONVEX_SELF_HOSTED_ADMIN_KEY": backend["key"],
           "CI": "1", "NO_COLOR": "1"}
    # A CLI that cannot get an answer retries for ever: the timeout turns that into a failure.
    # The CLI wants a project directory (package.json): its own install directory is one.
    out = subprocess.run([run, *args], env=env, capture_output=True, text=True, timeout=timeout,
                         cwd=os.path.dirname(run))
    assert out.returncode == 0, f"convex {version} {' '.join(args)} -> {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_env_commands_agree_with_the_collection(convex, backend, tmp_path):
    client = ConvexClient(backend["url"], backend["key"])
    client.update_env([{"name": "SET_BY_COLLECTION", "value": "from module_utils"}])
    run_cli(convex, backend, "env", "set", "SET_BY_CLI", "value with spaces")
    listed = dict(line.split("=", 1) for line in run_cli(convex, backend, "env", "list").splitlines() if "=" in line)
    assert listed == client.list_env() == {"SET_BY_COLLECTION": "from module_utils", "SET_BY_CLI": "value with spaces"}
    assert run_cli(convex, backend, "env", "get", "SET_BY_COLLECTION").strip() == "from module_utils"
    run_cli(convex, backend, "env", "remove", "SET_BY_CLI")
    assert client.list_env() == {"SET_BY_COLLECTION": "from module_utils"}


def test_export_import_and_data_agree_with_the_collection(convex, backend, tmp_path):
    # Seed through the collection's own import path, export with the CLI, wipe, import the CLI's zip back.
    seed = tmp_path / "seed.zip"
    docs = [{"_id": "k" * 32, "_creationTime": 1700000000000.0, "subject": "Friday", "n": 1},
            {"_id": "m" * 32, "_creationTime": 1700000000001.0, "subject": "afternoon", "n": 2}]
    with zipfile.ZipFile(seed, "w") as zf:
        zf.writestr("messages/documents.jsonl", "".join(json.dumps(d) + "\n" for d in docs))
    assert import_snapshot(backend["url"], backend["key"], str(seed)) == 2

    assert run_cli(convex, backend, "data").split() == ["messages"]
    table = run_cli(convex, backend, "data", "messages", "--format", "jsonLines")
    assert sorted(json.loads(line)["subject"] for line in table.splitlines()) == ["Friday", "afternoon"]

    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    run_cli(convex, backend, "export", "--path", str(out_dir))
    (zip_path,) = out_dir.glob("snapshot_*.zip")  # named as the backend's Content-Disposition says
    with zipfile.ZipFile(zip_path) as zf:
        exported = [json.loads(x) for x in zf.read("messages/documents.jsonl").decode().splitlines()]
    assert exported == docs

    # The collection's export of the same data holds the same documents.
    mine = tmp_path / "mine.zip"
    export_snapshot(backend["url"], backend["key"], str(mine), poll=0.2)
    with zipfile.ZipFile(mine) as zf:
        assert [json.loads(x) for x in zf.read("messages/documents.jsonl").decode().splitlines()] == docs

    wipe = tmp_path / "wipe.zip"
    with zipfile.ZipFile(wipe, "w") as zf:
        zf.writestr("other/documents.jsonl", json.dumps({"_id": "z" * 32, "_creationTime": 1.0}) + "\n")
    import_snapshot(backend["url"], backend["key"], str(wipe))
    assert run_cli(convex, backend, "data").split() == ["other"]
    run_cli(convex, backend, "import", "--replace-all", "-y", str(zip_path))
    assert run_cli(convex, backend, "data").split() == ["messages"]
    table = run_cli(convex, backend, "data", "messages", "--format", "jsonLines")
    assert sorted((json.loads(line)["_id"], json.loads(line)["n"]) for line in table.splitlines()) == [
        ("k" * 32, 1), ("m" * 32, 2)]


def test_a_wrong_admin_key_fails_instead_of_hanging(convex, backend):
    bad = dict(backend, key="convex-self-hosted|" + "00" * 40)
    version, run = convex
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
           "CONVEX_SELF_HOSTED_URL": bad["url"], "CONVEX_SELF_HOSTED_ADMIN_KEY": bad["key"], "CI": "1"}
    out = subprocess.run([run, "env", "set", "X", "y"], env=env, capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(run))
    assert out.returncode != 0 and "BadAdminKey" in (out.stdout + out.stderr)
