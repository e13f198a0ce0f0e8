# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""Snapshot export of a self-hosted Convex deployment (contracts.md), standard library only.

Used by the convex_export module and, unchanged, by the backup engine the backup role installs on
hosts (scheduled hot backups run without Ansible). Messages never contain the admin key.

Private to this collection: no compatibility promise outside it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import time
import zipfile

from ansible_collections.owlat.selfhost.plugins.module_utils._convex import ConvexClient, ConvexError, describe_answer
from ansible_collections.owlat.selfhost.plugins.module_utils._http import HttpError, describe_error, request, split_url

LATEST_EXPORT = "_system/cli/exports:getLatest"
CHUNK = 1024 * 1024


def latest_export(client):
    """The latest export document (dict) or None."""
    response = client.call("POST", "/api/query", json_body={"path": LATEST_EXPORT, "args": {}, "format": "json"})
    if response.status != 200:
        raise ConvexError("reading the latest export failed: %s" % describe_answer(response), status=response.status)
    try:
        data = response.json()
    except ValueError:
        raise ConvexError("reading the latest export failed: the answer is not JSON")
    if not isinstance(data, dict) or data.get("status") != "success":
        message = data.get("errorMessage") if isinstance(data, dict) else None
        raise ConvexError("reading the latest export failed: %s" % (message or "unexpected answer"))
    value = data.get("value")
    return value if isinstance(value, dict) else None


def request_export(client, include_storage):
    """Ask for a new export; returns False when one is already running (ExportInProgress)."""
    response = client.call("POST", "/api/export/request/zip?includeStorage=%s" % ("true" if include_storage else "false"))
    if response.status == 200:
        return True
    if response.status == 400 and "ExportInProgress" in response.text():
        return False
    raise ConvexError("requesting an export failed: %s" % describe_answer(response), status=response.status)


def wait_export(client, previous_ts, deadline, poll=1.0, clock=time.monotonic, sleep=time.sleep):
    """Wait until an export newer than ``previous_ts`` is completed; return its document."""
    while True:
        doc = latest_export(client)
        if doc and doc.get("start_ts") != previous_ts:
            state = doc.get("state")
            if state == "completed":
                return doc
            if state == "failed":
                raise ConvexError("the export %s failed: %s" % (doc.get("start_ts"), doc.get("failure_reason", "no reason given")))
        if clock() >= deadline:
            state = doc.get("state") if doc else "not started"
            raise ConvexError("the export did not complete in time (last state: %s)" % state)
        sleep(poll)


def download_export(url, admin_key, start_ts, dest, timeout=60):
    """Stream ``GET /api/export/zip/<start_ts>`` into ``dest`` (mode 0600, replaced atomically).

    Returns (size, sha256 hex).
    """
    scheme, host, port, dummy = split_url(url)
    conn_class = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    conn = conn_class(host, port, timeout=timeout)
    tmp = dest + ".part"
    try:
        try:
            conn.request("GET", "/api/export/zip/%s" % start_ts, headers={"Authorization": "Convex %s" % admin_key})
            resp = conn.getresponse()
            if resp.status != 200:
                body = resp.read(2048).decode("utf-8", "replace")
                raise ConvexError("downloading export %s failed: HTTP %d %s" % (start_ts, resp.status, " ".join(body.split())[:200]),
                                  status=resp.status)
            digest = hashlib.sha256()
            size = 0
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except (OSError, http.client.HTTPException) as exc:
            raise ConvexError("downloading export %s failed: %s" % (start_ts, describe_error(exc)))
        os.replace(tmp, dest)
        return size, digest.hexdigest()
    finally:
        conn.close()
        if os.path.exists(tmp):
            os.unlink(tmp)


def export_snapshot(url, admin_key, dest, include_storage=True, timeout=600, poll=1.0,
                    clock=time.monotonic, sleep=time.sleep):
    """Request a snapshot export, wait for it and download it to ``dest``.

    An export already running (someone else's) is waited for, then a new one is requested, so the
    result is always at least as new as this call. Returns a dict: start_ts, size, sha256, seconds.
    """
    started = clock()
    deadline = started + timeout
    client = ConvexClient(url, admin_key, timeout=30)
    try:
        previous = latest_export(client)
        previous_ts = previous.get("start_ts") if previous else None
        if not request_export(client, include_storage):
            # Someone else's export is running: let it finish, then ask for ours.
            wait_export(client, None, deadline, poll, clock, sleep)
            previous = latest_export(client)
            previous_ts = previous.get("start_ts") if previous else None
            if not request_export(client, include_storage):
                raise ConvexError("another export is still running; try again later")
        doc = wait_export(client, previous_ts, deadline, poll, clock, sleep)
    except HttpError as exc:
        raise ConvexError("Convex backend at %s is unreachable: %s" % (url, exc))
    size, sha = download_export(url, admin_key, doc["start_ts"], dest, timeout=min(timeout, 300))
    return {"start_ts": str(doc["start_ts"]), "size": size, "sha256": sha, "seconds": round(clock() - started, 3)}


def import_snapshot(url, admin_key, path, timeout=600):
    """Replace every table with the snapshot zip at ``path`` (``convex import --replace-all``, one-shot form).

    Returns the number of documents written.
    """
    with open(path, "rb") as fh:
        body = fh.read()
    # ConvexClient.call sends JSON only; the import body is the raw zip.
    try:
        response = request(url.rstrip("/") + "/api/import?format=zip&mode=replaceAll", method="POST",
                           headers={"Authorization": "Convex %s" % admin_key, "Content-Type": "application/zip"},
                           body=body, timeout=timeout)
    except HttpError as exc:
        raise ConvexError("Convex backend at %s is unreachable: %s" % (url, exc))
    if response.status != 200:
        raise ConvexError("importing %s failed: %s" % (os.path.basename(path), describe_answer(response)), status=response.status)
    try:
        return int(response.json().get("numWritten", 0))
    except (ValueError, AttributeError, TypeError):
        return 0


# A file of the snapshot's file storage: upstream's import reads the id from `(.*/)?_storage/<id>[.<ext>]`
# (crates/application/src/snapshot_import/parse.rs:111-114, docs/upstream-external-storage.md §6b).
_STORAGE_FILE = re.compile(r"^(.*/)?_storage/([^/.]+)(?:\.[^/]+)?$")


def export_contents(path):
    """What a snapshot zip holds, as a user sees it: the documents of every table (system tables, whose names start
    with ``_``, left out) and the bytes of every stored file, keyed by storage id.

    A snapshot import keeps each document's _id and _creationTime (docs.convex.dev/database/import-export/import) and
    each file's storage id (import_file_storage.rs:137-149): an export taken after an import holds the same contents.
    Returns {tables, documents, files, sha256}: counts and one digest of all of it, independent of the order inside.
    """
    tables, files = {}, {}
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                folder, _sep, leaf = name.rpartition("/")
                if leaf == "documents.jsonl" and not folder.rpartition("/")[2].startswith("_"):
                    lines = archive.read(name).decode("utf-8").splitlines()
                    tables[folder] = sorted(json.dumps(json.loads(line), sort_keys=True) for line in lines if line.strip())
                    continue
                found = _STORAGE_FILE.match(name)
                if found and leaf != "documents.jsonl":
                    files[(found.group(1) or "") + found.group(2)] = hashlib.sha256(archive.read(name)).hexdigest()
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise ConvexError("%s is not a readable snapshot export: %s" % (path, exc))
    digest = hashlib.sha256(json.dumps({"tables": tables, "files": files}, sort_keys=True).encode()).hexdigest()
    return {"tables": len(tables), "documents": sum(len(docs) for docs in tables.values()), "files": len(files),
            "sha256": digest}
