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

import json
import os

from ansible_collections.owlat.selfhost.plugins.module_utils._convex import ADMIN_KEY_RE, ConvexClient, ConvexError
from ansible_collections.owlat.selfhost.plugins.module_utils._files import EnvFile, EnvFileError, file_state, read_text
from ansible_collections.owlat.selfhost.plugins.module_utils._status import DockerError, probe_stack

ADMIN_KEY_VAR = "CONVEX_SELF_HOSTED_ADMIN_KEY"


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


def read_stack(api, stack, network, files, convex=None, services=None):
    """Containers and network (when the engine answers), the files asked for, and the Convex deployment."""
    out = dict(engine=True, network_exists=False, volumes=[], containers={})
    try:
        out.update(probe_stack(api, stack, network, services))
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
