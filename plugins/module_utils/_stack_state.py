# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""What one stack looks like on its host, read in one module run (owlat_stack_state).

The roles compare it with what they would apply and run a module only for a part that differs: the
secrets (generated once, here), the containers and network, the files of the stack's configuration
directory, and the Convex deployment's admin key and environment. The comparison itself happens on
the controller (filters container_stale, files_stale, convex_env_stale), where the desired state is
rendered; this side only reads.

Private to this collection: no compatibility promise outside it.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import stat

from ansible_collections.owlat.selfhost.plugins.module_utils._convex import ADMIN_KEY_RE, ConvexClient, ConvexError
from ansible_collections.owlat.selfhost.plugins.module_utils._files import EnvFile, EnvFileError, read_text
from ansible_collections.owlat.selfhost.plugins.module_utils._status import DockerError, probe_stack

ADMIN_KEY_VAR = "CONVEX_SELF_HOSTED_ADMIN_KEY"


def _name(lookup, ident):
    try:
        return lookup(ident)[0]
    except KeyError:
        return None


def file_state(path):
    """kind (file, directory, absent, other), mode as four octal digits, uid/gid and their names, sha256 of a file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return dict(kind="absent")
    if stat.S_ISDIR(st.st_mode):
        kind = "directory"
    elif stat.S_ISREG(st.st_mode):
        kind = "file"
    else:
        kind = "other"
    out = dict(kind=kind, mode="%04o" % stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
               owner=_name(pwd.getpwuid, st.st_uid), group=_name(grp.getgrgid, st.st_gid))
    if kind == "file":
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(65536), b""):
                digest.update(block)
        out["sha256"] = digest.hexdigest()
    return out


def walk(directory, depth):
    """file_state of every entry under ``directory``, down to ``depth`` levels (symlinks not followed)."""
    out = {}
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return out
    for name in names:
        path = os.path.join(directory, name)
        out[path] = file_state(path)
        if out[path]["kind"] == "directory" and depth > 1:
            out.update(walk(path, depth - 1))
    return out


def stored_admin_key(path):
    text = read_text(path)
    if text is None:
        return None
    try:
        key = EnvFile(text).get(ADMIN_KEY_VAR)
    except EnvFileError:
        return None
    key = (key or "").strip()
    return key if ADMIN_KEY_RE.match(key) else None


def managed_names(path):
    """Names an earlier run set (convex_env's state file); None when the file is missing or unreadable."""
    text = read_text(path)
    if text is None:
        return None
    try:
        names = json.loads(text)
    except ValueError:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return names


def convex_state(spec, containers):
    """The deployment's admin key and environment, asked of the backend at its stack-network address.

    Never fails: what could not be read is reported (``error``) and the roles then run their own modules,
    which fail with the full story when something is really wrong."""
    out = dict(reachable=False, key_valid=False, key=None, env=None,
               managed=managed_names(spec["state_path"]) if spec.get("state_path") else None)
    backend = containers.get(spec["service"]) or {}
    if not backend.get("ip") or not backend.get("running"):
        out["error"] = "the %s container is not running on the stack network" % spec["service"]
        return out
    url = "http://%s:%d" % (backend["ip"], spec["port"])
    key = stored_admin_key(spec["key_path"])
    if key is None:
        out["error"] = "no admin key stored in %s" % spec["key_path"]
        return out
    client = ConvexClient(url, key, timeout=spec["timeout"])
    try:
        out["key_valid"] = bool(client.check_admin_key(key))
        out["reachable"] = True
        if out["key_valid"]:
            out["key"] = key
            out["env"] = client.list_env()
        else:
            out["error"] = "the backend refused the stored admin key"
    except ConvexError as exc:
        out["error"] = str(exc)
    return out


def read_stack(api, stack, network, files, convex=None):
    """Containers and network (when the engine answers), the files asked for, and the Convex deployment."""
    out = dict(engine=True, network_exists=False, containers={})
    try:
        out.update(probe_stack(api, stack, network))
    except DockerError as exc:
        out.update(engine=False, engine_error=str(exc))
    out["files"] = {}
    for path in files:
        out["files"][path] = file_state(path)
        if out["files"][path]["kind"] == "directory":
            out["files"].update(walk(path, depth=2))
    if convex:
        out["convex"] = convex_state(convex, out["containers"])
    return out
