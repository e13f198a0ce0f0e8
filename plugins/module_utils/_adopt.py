# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""An Owlat install made the way upstream documents it (install.sh / quickstart: a compose project in /opt/owlat,
its secrets in .env), read for adoption, and its volumes' data handed over to a stack of this collection.

Upstream facts (wolvesdotink/owlat @ c2b6921e2add9cf3ac69c195953fd044995fc309, tag v0.4.4; docs/upstream-adopt.md):
the compose file sets no project name, so the project is the install directory's name and its volumes are
<project>_<key>; OWLAT_VERSION in .env is the release (bare semver); the secrets are those of
packages/shared/src/setupSecrets.ts, the admin key is CONVEX_ADMIN_KEY.

Private to this collection: no compatibility promise outside it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2 is not supported by this collection
    from urllib import quote

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_VOLUME = "com.docker.compose.volume"
# The services of upstream's compose that manage the install themselves: they go, and nothing replaces them
# (docker-compose.yml @ c2b6921: updater drives `docker compose` through the socket proxy).
SELF_MANAGING = ("updater", "docker-socket-proxy")
VERSION_RE = re.compile(r"^v?(\d+\.\d+\.\d+)$")


def parse_env(text):
    """A compose .env file: NAME=value lines; comments, blank lines and `export ` prefixes ignored; a value in
    matching single or double quotes is unquoted (setup-cli quotes values with spaces or `="'$\\`)."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
            if line.partition("=")[2].strip()[0] == '"':
                value = re.sub(r'\\(["\\$`])', r"\1", value)
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[name] = value
    return values


def read_secrets(env, formats, is_valid, describe):
    """(values, missing, malformed) of the secrets named in formats ({name: format}): values only for the ones in
    the right format; malformed as [{name, format}] (the format's description, never the value)."""
    values, missing, malformed = {}, [], []
    for name in sorted(formats):
        value = env.get(name, "")
        if not value:
            missing.append(name)
        elif not is_valid(formats[name], value):
            malformed.append({"name": name, "format": describe(formats[name])})
        else:
            values[name] = value
    return values, missing, malformed


def release_of(env, containers):
    """The install's Owlat release: OWLAT_VERSION of .env, else the tag of its web image; None when neither."""
    match = VERSION_RE.match(env.get("OWLAT_VERSION", "").strip())
    if match:
        return match.group(1)
    for item in containers:
        if item["service"] == "web":
            match = VERSION_RE.match(item["image"].rsplit("@", 1)[0].rpartition(":")[2])
            if match:
                return match.group(1)
    return None


def host_volumes(api):
    return (api.get("/volumes") or {}).get("Volumes") or []


def project_objects(api, project, all_volumes=None):
    """The project's containers, volumes and networks, by compose label (volumes also by name: upstream's
    restore.sh creates <project>_<key> volumes without labels). all_volumes: the host's, if already read."""
    label = quote(json.dumps({"label": ["%s=%s" % (COMPOSE_PROJECT, project)]}))
    containers = []
    for item in api.get("/containers/json?all=1&filters=" + label):
        labels = item.get("Labels") or {}
        containers.append({"name": (item.get("Names") or ["/?"])[0].lstrip("/"), "id": item["Id"],
                           "service": labels.get(COMPOSE_SERVICE, ""), "image": item.get("Image", ""),
                           "running": item.get("State") == "running"})
    volumes = []
    for item in host_volumes(api) if all_volumes is None else all_volumes:
        labels = item.get("Labels") or {}
        if labels.get(COMPOSE_PROJECT) == project or item["Name"].startswith(project + "_"):
            key = labels.get(COMPOSE_VOLUME) or item["Name"][len(project) + 1:]
            volumes.append({"name": item["Name"], "key": key, "mountpoint": item.get("Mountpoint", "")})
    networks = sorted(item["Name"] for item in api.get("/networks?filters=" + label) or [])
    return sorted(containers, key=lambda c: c["name"]), sorted(volumes, key=lambda v: v["name"]), networks


# ------------------------------------------------------------------------------------------------ handover
def tree_digest(root, content=False):
    """SHA-256 over every entry under root (relative path, kind, size, mode, owner, modification time, link target;
    with content, the files' bytes too): equal before and after a move that kept everything."""
    digest = hashlib.sha256()
    count = 0
    size = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            meta = os.lstat(path)
            rel = os.path.relpath(path, root)
            line = "%s\0%o\0%d\0%d\0%d\0%d\0" % (rel, meta.st_mode, meta.st_uid, meta.st_gid, meta.st_size, meta.st_mtime_ns)
            digest.update(line.encode("utf-8", "surrogateescape"))
            if stat.S_ISLNK(meta.st_mode):
                digest.update(os.readlink(path).encode("utf-8", "surrogateescape"))
            elif stat.S_ISREG(meta.st_mode):
                size += meta.st_size
                if content:
                    with open(path, "rb") as fh:
                        for chunk in iter(lambda: fh.read(1 << 20), b""):
                            digest.update(chunk)
            count += 1
    return {"digest": digest.hexdigest(), "entries": count, "bytes": size}


def _copy_owned(src, dest):
    if os.path.isdir(src) and not os.path.islink(src):
        os.makedirs(dest, exist_ok=True)
        for entry in os.listdir(src):
            _copy_owned(os.path.join(src, entry), os.path.join(dest, entry))
        shutil.copystat(src, dest)
    else:
        shutil.copy2(src, dest, follow_symlinks=False)
    meta = os.lstat(src)
    os.lchown(dest, meta.st_uid, meta.st_gid)
    if os.path.isdir(dest) and not os.path.islink(dest):
        os.utime(dest, ns=(meta.st_atime_ns, meta.st_mtime_ns))


def same_filesystem(a, b):
    return os.stat(a).st_dev == os.stat(b).st_dev


def hand_over(src, dest, check_mode=False):
    """Move everything in directory src into the empty directory dest: renamed on the same filesystem (nothing is
    copied), copied and then removed across filesystems. The directory's own owner and mode go along (Redis writes
    as uid 999). Verified: the digest of dest afterwards is the one src had. Returns {changed, method, entries,
    bytes, digest}; raises ValueError (nothing moved) when dest already holds data and src does too."""
    entries = sorted(os.listdir(src)) if os.path.isdir(src) else []
    if not entries:
        return dict(changed=False, method="none", **tree_digest(dest))
    if os.listdir(dest):
        raise ValueError("both %s and %s hold data: move by hand, or remove the one that is not wanted" % (src, dest))
    same_fs = same_filesystem(src, dest)
    before = tree_digest(src, content=not same_fs)
    if check_mode:
        return dict(changed=True, method="rename" if same_fs else "copy", **before)
    meta = os.stat(src)
    for entry in entries:
        source, target = os.path.join(src, entry), os.path.join(dest, entry)
        try:
            os.rename(source, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            _copy_owned(source, target)
    os.chown(dest, meta.st_uid, meta.st_gid)
    os.chmod(dest, stat.S_IMODE(meta.st_mode))
    after = tree_digest(dest, content=not same_fs)
    if after["digest"] != before["digest"]:
        raise ValueError("the data in %s differs from what %s held (%d entries before, %d after): the source was %s"
                         % (dest, src, before["entries"], after["entries"],
                            "kept" if not same_fs else "moved; compare by hand"))
    if not same_fs:
        for entry in entries:
            path = os.path.join(src, entry)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
    return dict(changed=True, method="rename" if same_fs else "copy", **after)
