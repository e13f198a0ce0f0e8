"""convex_export against the convex-backend test double (a real HTTP server process)."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile

import pytest

from ansible_collections.owlat.selfhost.plugins.modules import convex_export

DOUBLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "doubles")
BACKEND = os.path.join(DOUBLES, "convex-backend", "server.py")
GEN_KEY = os.path.join(DOUBLES, "convex-backend", "generate_admin_key.sh")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, path, body, key):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": "Convex " + key, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


@pytest.fixture
def backend(tmp_path):
    api, site = free_port(), free_port()
    env = {"PATH": os.environ["PATH"], "OWLAT_DOUBLE_PORTS": "%d,%d" % (api, site),
           "OWLAT_DOUBLE_DATA": str(tmp_path / "data"), "INSTANCE_SECRET": "ab" * 32}
    proc = subprocess.Popen([sys.executable, BACKEND], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % api
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/version", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    key = subprocess.run(["sh", GEN_KEY], env=env, capture_output=True, text=True, check=True).stdout.strip()
    # Functions "deployed" so that lab:put / lab:list exist (the double's stand-in for Owlat's code).
    subprocess.run([sys.executable, os.path.join(DOUBLES, "convex-deploy", "convex.py"), "deploy"],
                   env=dict(env, CONVEX_SELF_HOSTED_URL=url, CONVEX_SELF_HOSTED_ADMIN_KEY=key), check=True,
                   capture_output=True)
    keyfile = tmp_path / "admin.env"
    keyfile.write_text("CONVEX_SELF_HOSTED_ADMIN_KEY=%s\n" % key)
    yield {"url": url, "key": key, "keyfile": str(keyfile)}
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)


def put(b, table, doc):
    return call(b["url"], "/api/mutation", {"path": "lab:put", "args": {"table": table, "doc": doc}, "format": "json"}, b["key"])


def listing(b, table):
    return call(b["url"], "/api/query", {"path": "lab:list", "args": {"table": table}, "format": "json"}, b["key"])["value"]


def test_export_then_import_brings_the_documents_back(run_module, backend, tmp_path, visible_text):
    for i in range(5):
        put(backend, "notes", {"n": i, "text": "note %d" % i})
    before = listing(backend, "notes")
    dest = str(tmp_path / "export.zip")
    res = run_module(convex_export, dict(url=backend["url"], admin_key_file=backend["keyfile"], path=dest))
    assert res["failed"] is False, res
    assert res["changed"] is True and res["size"] == os.path.getsize(dest)
    assert res["sha256"] == hashlib.sha256(open(dest, "rb").read()).hexdigest()
    assert oct(os.stat(dest).st_mode & 0o777) == "0o600"
    with zipfile.ZipFile(dest) as zf:
        assert "notes/documents.jsonl" in zf.namelist()
    assert backend["key"] not in visible_text(res)

    # Data changes after the export; the import puts the exported state back (replace-all).
    put(backend, "notes", {"n": 99})
    put(backend, "other", {"x": 1})
    res = run_module(convex_export, dict(url=backend["url"], admin_key=backend["key"], path=dest, state="imported"))
    assert res["failed"] is False, res
    assert res["documents"] == 5
    assert listing(backend, "notes") == before
    assert listing(backend, "other") == []


def test_each_export_is_new(run_module, backend, tmp_path):
    put(backend, "notes", {"n": 1})
    first = run_module(convex_export, dict(url=backend["url"], admin_key_file=backend["keyfile"], path=str(tmp_path / "a.zip")))
    put(backend, "notes", {"n": 2})
    second = run_module(convex_export, dict(url=backend["url"], admin_key_file=backend["keyfile"], path=str(tmp_path / "b.zip")))
    assert int(second["start_ts"]) > int(first["start_ts"])
    with zipfile.ZipFile(str(tmp_path / "b.zip")) as zf:
        assert len(zf.read("notes/documents.jsonl").splitlines()) == 2


def test_check_mode_requests_nothing(run_module, backend, tmp_path):
    dest = tmp_path / "export.zip"
    res = run_module(convex_export, dict(url=backend["url"], admin_key_file=backend["keyfile"], path=str(dest)), check_mode=True)
    assert res["changed"] is True and not dest.exists()
    latest = call(backend["url"], "/api/query", {"path": "_system/cli/exports:getLatest", "args": {}, "format": "json"}, backend["key"])
    assert latest["value"] is None
    # A directory (or a zip to import) an earlier task of the run would make is no error in check mode.
    later = str(tmp_path / "made-later" / "export.zip")
    for state in ("exported", "imported"):
        res = run_module(convex_export, dict(url=backend["url"], admin_key_file=backend["keyfile"], path=later,
                                             state=state), check_mode=True)
        assert res["failed"] is False and res["changed"] is True, res


def test_wrong_key_fails_without_showing_it(run_module, backend, tmp_path, visible_text):
    wrong = "convex-self-hosted|" + "0" * 96
    res = run_module(convex_export, dict(url=backend["url"], admin_key=wrong, path=str(tmp_path / "e.zip")))
    assert res["failed"] is True
    assert "401" in res["msg"] and "BadAdminKey" in res["msg"]
    assert wrong not in visible_text(res)
    assert not (tmp_path / "e.zip").exists()


def test_bad_key_file_and_missing_import_file(run_module, backend, tmp_path):
    bad = tmp_path / "bad.env"
    bad.write_text("SOMETHING=else\n")
    res = run_module(convex_export, dict(url=backend["url"], admin_key_file=str(bad), path=str(tmp_path / "x.zip")))
    assert res["failed"] is True and "CONVEX_SELF_HOSTED_ADMIN_KEY" in res["msg"]
    res = run_module(convex_export, dict(url=backend["url"], admin_key=backend["key"], path=str(tmp_path / "none.zip"), state="imported"))
    assert res["failed"] is True and "does not exist" in res["msg"]


def test_unreachable_backend(run_module, tmp_path, closed_port):
    res = run_module(convex_export, dict(url="http://127.0.0.1:%d" % closed_port, admin_key="k|00", path=str(tmp_path / "x.zip")))
    assert res["failed"] is True and "unreachable" in res["msg"]


def test_an_export_after_the_import_has_the_same_contents(run_module, backend, tmp_path):
    """The move's data check: export, import into another deployment, export again -> the same digest; one document
    more -> another one."""
    for i in range(4):
        put(backend, "notes", {"n": i})
    put(backend, "people", {"name": "ada"})
    first, again = str(tmp_path / "first.zip"), str(tmp_path / "again.zip")
    before = run_module(convex_export, dict(url=backend["url"], admin_key=backend["key"], path=first))["contents"]
    assert before["tables"] == 2 and before["documents"] == 5, before
    put(backend, "notes", {"n": 4})
    assert run_module(convex_export, dict(url=backend["url"], admin_key=backend["key"], path=first, state="imported"))["documents"] == 5
    after = run_module(convex_export, dict(url=backend["url"], admin_key=backend["key"], path=again))["contents"]
    assert after == before
    put(backend, "notes", {"n": 5})
    changed = run_module(convex_export, dict(url=backend["url"], admin_key=backend["key"], path=again))["contents"]
    assert changed["documents"] == 6 and changed["sha256"] != before["sha256"]


def test_contents_leave_system_tables_out_and_count_files(tmp_path):
    """Files keyed by storage id whatever their extension; _tables and _storage metadata are not user data; the
    order inside the zip and of the lines does not matter; a broken zip is named."""
    from ansible_collections.owlat.selfhost.plugins.module_utils._convex import ConvexError
    from ansible_collections.owlat.selfhost.plugins.module_utils._convex_export import export_contents

    def write(path, members):
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members:
                zf.writestr(name, data)
        return export_contents(path)

    docs = ['{"_id": "a", "n": 1}', '{"n": 2, "_id": "b"}']
    one = write(str(tmp_path / "1.zip"), [("notes/documents.jsonl", "\n".join(docs) + "\n"),
                                          ("_tables/documents.jsonl", '{"name": "notes", "id": 1}\n'),
                                          ("_storage/documents.jsonl", '{"_id": "kg1", "internalId": "x"}\n'),
                                          ("_storage/kg1.png", b"\x89PNG bytes")])
    assert (one["tables"], one["documents"], one["files"]) == (1, 2, 1)
    two = write(str(tmp_path / "2.zip"), [("_storage/kg1", b"\x89PNG bytes"),
                                          ("_tables/documents.jsonl", '{"name": "notes", "id": 7}\n'),
                                          ("_storage/documents.jsonl", '{"_id": "kg1", "internalId": "y"}\n'),
                                          ("notes/documents.jsonl", "\n".join(reversed(docs)))])
    assert two == one
    three = write(str(tmp_path / "3.zip"), [("notes/documents.jsonl", "\n".join(docs)), ("_storage/kg1", b"other bytes")])
    assert three["sha256"] != one["sha256"]
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(ConvexError, match="bad.zip is not a readable snapshot export"):
        export_contents(str(tmp_path / "bad.zip"))
