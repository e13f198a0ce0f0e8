"""A stack whose data is outside its host (the lab's PostgreSQL 17 over TLS and radosgw S3): the collection made its
database, the backend keeps documents there and files in the bucket, a hot backup holds both, and a restore into a
dropped database and emptied buckets brings them back byte for byte, and so does the rollback of a failed upgrade,
into an empty database (the migrated one kept)."""

import base64
import hashlib
import json
import os
import pathlib
import re
import secrets
import subprocess
import sys
import time

import pytest
import testinfra

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "shared"))
import lab_convex  # noqa: E402
from converge_run import recap, run_converge, run_playbook  # noqa: E402
from lab_convex import sh  # noqa: E402

testinfra_hosts = ["docker://owlat-mol-ext"]
HOST, STACK, INSTANCE, DB = "owlat-mol-ext", "owlat", "ext-one", "ext_one"
BUCKETS = ["owlat-ext-exports", "owlat-ext-snapshot-imports", "owlat-ext-modules", "owlat-ext-files", "owlat-ext-search"]
STATUS = f"/var/lib/owlat/backup/{STACK}.json"
LAB = pathlib.Path(__file__).resolve().parents[3] / "lab" / "lab.py"
S = {}  # what earlier tests saw, for the later ones


def psql(sql, db="postgres"):
    """As the lab's PostgreSQL admin, from inside the server's container."""
    return subprocess.run(["docker", "exec", "owlat-lab-pg", "sh", "-c",
                           'PGPASSWORD=$(cat /lab/admin-password) psql -h 172.29.0.252 -U owlat_admin -XAtq -d "$0" -c "$1"',
                           db, sql], capture_output=True, text=True, check=True).stdout.strip()


def bucket_keys(bucket):
    """The keys in one of the lab's buckets (lab.py's own signed request, as the lab's S3 user)."""
    listing = subprocess.run([sys.executable, "-c", (
        "import sys; sys.argv=['lab.py']; sys.path.insert(0, %r); import lab; print(lab.s3_request('GET', '/%s')[1])")
        % (str(LAB.parent), bucket)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"<Key>([^<]+)</Key>", listing)


def lab_pg_url():
    """The lab's PostgreSQL as its admin user (the URL the host_vars build)."""
    state = pathlib.Path(os.environ.get("OWLAT_LAB_STATE") or LAB.parent / ".state")
    return "postgresql://owlat_admin:%s@172.29.0.252:5432" % (state / "pg" / "admin-password").read_text().strip()


def call(host, kind, path, args):
    status, body = lab_convex.convex(host, STACK, f"/api/{kind}", {"path": path, "args": args, "format": "json"})
    assert status == 200, body
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return answer["value"]


def checksums(host, stored=None):
    """What users care about: the documents and the bytes of every file."""
    notes = call(host, "query", "lab:list", {"table": "notes"})
    files = {sid: hashlib.sha256(base64.b64decode(call(host, "query", "lab:getFile", {"storageId": sid}) or "")).hexdigest()
             for sid in sorted(S.get("files", {}) if stored is None else stored)}
    return {"notes": len(notes), "documents": hashlib.sha256(json.dumps(notes, sort_keys=True).encode()).hexdigest(),
            "files": files}


def test_the_collection_made_the_database_and_the_backend_uses_it_over_tls(host):
    logs = sh(host, f"docker logs {STACK}-convex 2>&1")
    assert f"Connected to Postgres database: {INSTANCE}" in logs
    assert psql(f"SELECT datname FROM pg_database WHERE datname = '{DB}'") == DB
    assert psql("SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                f"WHERE a.datname = '{DB}' AND a.application_name <> 'psql'") == "t"
    # Nothing of it on the host's disk.
    assert sh(host, f"docker exec {STACK}-convex find /convex/data -name '*.sqlite3'").strip() == ""


def test_seed_documents_and_files(host):
    for i in range(30):
        call(host, "mutation", "lab:put", {"table": "notes", "doc": {"n": i, "text": secrets.token_hex(64)}})
    S["files"] = {}
    for i in range(6):
        data = secrets.token_bytes(50_000 + i)
        sid = call(host, "mutation", "lab:storeFile", {"data": base64.b64encode(data).decode()})
        S["files"][sid] = hashlib.sha256(data).hexdigest()
    S["seeded"] = checksums(host)
    assert S["seeded"]["notes"] == 30 and S["seeded"]["files"] == S["files"]
    # The files are in the bucket, under the instance's prefix (upstream: `<instance name>-<uuid>/`).
    keys = bucket_keys("owlat-ext-files")
    assert all(any(re.fullmatch(rf"{INSTANCE}-[0-9a-f-]+/{sid}", k) for k in keys) for sid in S["files"]), keys


def test_a_hot_backup_holds_documents_and_files(host):
    start = time.monotonic()
    rc, out = run_playbook("owlat.selfhost.backup", "-e", f"owlat_target={HOST}", "-e", '{"owlat_backup_run_tags": ["ext"]}')
    seconds = round(time.monotonic() - start, 1)
    assert rc == 0, out[-3000:]
    status = json.loads(host.file(STATUS).content_string)
    assert status["result"] == "success" and status["mode"] == "hot" and status["downtime_seconds"] == 0, status
    assert status["contents"] == "convex-export-with-files", status
    S["backup"] = dict(seconds=seconds, duration=status["duration_seconds"], size=status["size_bytes"])
    print(f"\nhot backup of 30 documents and 6 files (300 kB): playbook {seconds} s, backup {status['duration_seconds']} s, "
          f"{status['size_bytes']} bytes processed")


def test_restore_into_a_dropped_database_and_emptied_buckets(host):
    psql(f'DROP DATABASE "{DB}" WITH (FORCE)')
    subprocess.run([sys.executable, str(LAB), "s3-buckets", "--empty", *BUCKETS], check=True, capture_output=True)
    # Gone for real: no database, no object left.
    assert psql(f"SELECT datname FROM pg_database WHERE datname = '{DB}'") == ""
    assert {b: bucket_keys(b) for b in BUCKETS} == {b: [] for b in BUCKETS}
    start = time.monotonic()
    rc, out = run_playbook("owlat.selfhost.restore", "-e", f"owlat_restore_host={HOST}",
                           "-e", "owlat_backup_restore_confirm=true")
    S["restore_seconds"] = round(time.monotonic() - start, 1)
    assert rc == 0, out[-4000:]
    assert psql(f"SELECT datname FROM pg_database WHERE datname = '{DB}'") == DB
    assert checksums(host) == S["seeded"]
    print(f"\nrestore into a new database and empty buckets: {S['restore_seconds']} s")


# Lab only: 0.4.4's web image fails its health check (lab/lab.py pushes web:0.4.4-broken). The doubles answer within a
# second: the failing gates give up after 30/60 s instead of 3/2 min.
BROKEN_WEB = {"owlat_stack_release_catalog_extra": {"0.4.4": {"images": {"web": "ghcr.io/wolvesdotink/web:0.4.4-broken"}}},
              "owlat_app_health_timeout": 30, "owlat_proxy_health_timeout": 60}


def test_a_failed_upgrade_rolls_back_into_an_empty_database_and_keeps_the_migrated_one(host):
    """0.4.3 -> 0.4.4 fails after the backend restart: 0.4.3 starts on an empty database, the pre-upgrade export (with
    the files) is imported into it, the data is as it was; the database 0.4.4's backend ran on is kept, renamed."""
    start = time.monotonic()
    rc, out = run_playbook("owlat.selfhost.upgrade", "-e", "owlat_upgrade_release=0.4.4", "-e", json.dumps(BROKEN_WEB))
    seconds = round(time.monotonic() - start, 1)
    flat = " ".join(out.split())
    assert rc != 0 and "rolled back (snapshot " in flat, out[-4000:]
    aside = re.search(rf"the migrated database kept as ({DB}_pre_rollback_\d{{14}})", flat)
    assert aside, out[-4000:]
    databases = psql("SELECT datname FROM pg_database ORDER BY datname").split()
    assert DB in databases and aside.group(1) in databases, databases
    # The migrated one still holds what 0.4.4's backend found (nothing dropped); the stack runs 0.4.3 with the data.
    assert int(psql("SELECT count(*) FROM documents", db=aside.group(1))) > 0
    assert json.loads(sh(host, f"cat /etc/ansible/facts.d/owlat_{STACK}.fact"))["release"] == "0.4.3"
    assert checksums(host) == S["seeded"]
    print(f"\nupgrade 0.4.3 -> 0.4.4 failed, rolled back into an empty database: {seconds} s")


def test_a_second_stack_on_the_first_ones_database_is_refused_with_no_change(host):
    """owlat-mol-ext2 (not deployed yet) with its stack pointed at ext_one, which owlat-mol-ext's stack runs on: the
    fleet preflight names both and changes nothing on either host."""
    before = sh(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {STACK}-convex")
    same = {"owlat_convex_instance_name": INSTANCE, "owlat_convex_postgres_url": lab_pg_url()}
    rc, out = run_converge("-e", "owlat_target=owlat_hosts:owlat_extra", "-e", json.dumps(same))
    flat = " ".join(out.split())
    assert rc != 0, out[-3000:]
    assert (f"database postgres://172.29.0.252:5432/{DB} would be used by stack {STACK} on {HOST} and stack {STACK} "
            f"on {HOST}2") in flat, out[-3000:]
    assert all(s["changed"] == 0 for s in recap(out).values()), recap(out)
    assert sh(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {STACK}-convex") == before
    state = pathlib.Path(os.environ.get("OWLAT_LAB_STATE") or LAB.parent / ".state")
    assert (state / "pg" / "admin-password").read_text().strip() not in out


def test_a_second_run_after_the_restore_and_the_rollback_changes_nothing(host):
    rc, out = run_converge()
    assert rc == 0, out[-3000:]
    assert recap(out)[HOST]["changed"] == 0, out[-3000:]


WRONG_PASSWORD = "postgresql://owlat_admin:wrong-password@172.29.0.252:5432"


@pytest.mark.parametrize("case,extra,expected", [
    # The database is not there either; the deploy record says where the data is, and that comes first.
    ("another database than the data's (the instance renamed)", {"owlat_convex_instance_name": "other-db",
                                                                "owlat_convex_postgres_admin_url": ""},
     f"convex, stack {STACK} on {HOST}: its data is in postgres://172.29.0.252:5432/{DB} with files in S3 (its deploy "
     "record), but the inventory now says postgres://172.29.0.252:5432/other_db with files in S3: the backend would "
     "start there with no data"),
    ("a wrong password", {"owlat_convex_postgres_url": WRONG_PASSWORD, "owlat_convex_postgres_admin_url": ""},
     f"convex, stack {STACK} on {HOST}: PostgreSQL 172.29.0.252:5432 refused the password of user owlat_admin "
     "(owlat_convex_postgres_url)"),
])
def test_storage_problems_are_named_before_any_change(host, case, extra, expected):
    """The preflight asks the servers from the host: nothing changes, and no secret is printed."""
    before = sh(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {STACK}-convex")
    rc, out = run_converge("-e", json.dumps(extra))
    flat = " ".join(out.split())
    assert rc != 0 and expected in flat, (case, out[-3000:])
    assert all(s["changed"] == 0 for s in recap(out).values()), recap(out)
    assert sh(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {STACK}-convex") == before
    state = pathlib.Path(os.environ.get("OWLAT_LAB_STATE") or LAB.parent / ".state")
    assert (state / "pg" / "admin-password").read_text().strip() not in out and "wrong-password" not in out


EXT2, DB2, INSTANCE2 = "owlat-mol-ext2", "ext_two", "ext-two"


def test_a_sqlite_stack_moves_to_postgres_and_s3_with_the_same_data(monkeypatch):
    """owlat-mol-ext2's stack on SQLite, seeded; the inventory edited to the lab's PostgreSQL and S3 (the buckets of
    owlat-mol-ext's stack, its own prefix): site.yml refuses to start it empty, check mode changes nothing,
    move_storage.yml moves it - the same documents and file bytes, served from the new database, the export removed,
    the SQLite database left in the volume - and a second run changes nothing."""
    ext2 = testinfra.get_host(f"docker://{EXT2}")
    start = time.monotonic()
    rc, out = run_converge("-e", f"owlat_target={EXT2}")
    deploy_seconds = round(time.monotonic() - start, 1)
    assert rc == 0, out[-3000:]
    assert "Connected to SQLite" in sh(ext2, f"docker logs {STACK}-convex 2>&1")
    stored = {}
    for i in range(20):
        call(ext2, "mutation", "lab:put", {"table": "notes", "doc": {"n": i, "text": secrets.token_hex(32)}})
    for i in range(4):
        data = secrets.token_bytes(40_000 + i)
        stored[call(ext2, "mutation", "lab:storeFile", {"data": base64.b64encode(data).decode()})] = hashlib.sha256(data).hexdigest()
    seeded = checksums(ext2, stored)
    assert seeded["notes"] == 20 and seeded["files"] == stored

    monkeypatch.setenv("OWLAT_LAB_EXT2_STORE", "postgres")
    began = sh(ext2, f"docker inspect -f '{{{{.State.StartedAt}}}}' {STACK}-convex")
    rc, out = run_converge("-e", f"owlat_target={EXT2}")
    flat = " ".join(out.split())
    assert rc != 0 and (f"convex, stack {STACK} on {EXT2}: its data is in SQLite in volume {STACK}-convex-data with "
                        f"files in volume {STACK}-convex-data (its deploy record), but the inventory now says "
                        f"postgres://172.29.0.252:5432/{DB2} with files in S3") in flat, out[-3000:]
    assert all(v["changed"] == 0 for v in recap(out).values()), recap(out)
    assert sh(ext2, f"docker inspect -f '{{{{.State.StartedAt}}}}' {STACK}-convex") == began

    # Check mode says what it would do and does nothing: the backend and web keep running on SQLite.
    rc, out = run_playbook("owlat.selfhost.move_storage", "--check", "-e", f"owlat_move_storage_stack={EXT2}")
    assert rc == 0 and "would be moved (check mode)" in " ".join(out.split()), out[-3000:]
    assert sh(ext2, f"docker inspect -f '{{{{.State.StartedAt}}}}' {STACK}-convex") == began
    assert sh(ext2, f"docker inspect -f '{{{{.State.Running}}}}' {STACK}-web").strip() == "true"
    assert psql(f"SELECT datname FROM pg_database WHERE datname = '{DB2}'") == ""

    start = time.monotonic()
    rc, out = run_playbook("owlat.selfhost.move_storage", "-e", f"owlat_move_storage_stack={EXT2}")
    move_seconds = round(time.monotonic() - start, 1)
    flat = " ".join(out.split())
    assert rc == 0, out[-4000:]
    assert "moved; the data checked in the new store, the old one left as it was" in flat, out[-3000:]
    # The 20 notes and what the lab's functions keep of their own (an administrator seeded at deploy).
    moved = re.search(r"(\d+) documents, (\d+) tables, 4 files", flat)
    assert moved and int(moved.group(1)) >= 20, out[-3000:]
    assert f"Connected to Postgres database: {INSTANCE2}" in sh(ext2, f"docker logs {STACK}-convex 2>&1")
    assert int(psql("SELECT count(*) FROM documents", db=DB2)) > 0
    assert checksums(ext2, stored) == seeded
    keys = bucket_keys("owlat-ext-files")
    assert all(any(re.fullmatch(rf"{INSTANCE2}-[0-9a-f-]+/{sid}", k) for k in keys) for sid in stored), keys
    assert sh(ext2, "ls -A /var/lib/owlat/moves").strip() == ""
    assert sh(ext2, f"docker exec {STACK}-convex find /convex/data -name '*.sqlite3'").strip() != ""
    record = json.loads(sh(ext2, f"cat /etc/ansible/facts.d/owlat_{STACK}.fact"))
    assert record["storage"] == {"database": f"postgres://172.29.0.252:5432/{DB2}", "files": "s3"}, record
    assert lab_pg_url().split(":")[2].split("@")[0] not in out

    start = time.monotonic()
    rc, out = run_playbook("owlat.selfhost.move_storage", "-e", f"owlat_move_storage_stack={EXT2}")
    again_seconds = round(time.monotonic() - start, 1)
    assert rc == 0 and recap(out)[EXT2]["changed"] == 0, out[-3000:]
    assert "nothing to move: the data is where the inventory says" in " ".join(out.split())
    # Back to SQLite is no move the playbook makes (the volume still holds the old database): refused, nothing changed.
    monkeypatch.delenv("OWLAT_LAB_EXT2_STORE")
    rc, out = run_playbook("owlat.selfhost.move_storage", "-e", f"owlat_move_storage_stack={EXT2}")
    assert rc != 0 and (f"convex, stack {STACK} on {EXT2}: move_storage.yml moves a stack's data into PostgreSQL "
                        "(owlat_convex_postgres_url) only, the inventory names SQLite in the volume") in " ".join(out.split())
    assert recap(out)[EXT2]["changed"] == 0, out[-3000:]
    assert checksums(ext2, stored) == seeded
    print(f"\nSQLite stack deployed in {deploy_seconds} s; moved to PostgreSQL + S3 (20 documents, 4 files of 40 kB) "
          f"in {move_seconds} s; a second run in {again_seconds} s")
