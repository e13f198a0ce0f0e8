# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""Controller side of owlat.selfhost.owlat_converged: the digest of the run's inputs, then the module.

The inputs are every ``owlat_*`` variable of the host, templated as the roles would see them, and the collection's
own files (roles, plugins, playbooks) and the ansible-core version: a changed setting, an upgraded collection or a
patched role all mean the host takes the full path. Only the digest leaves this process; values are never returned
or printed. A variable that cannot be templated here (it needs facts the fast path does not gather) sends the host
down the full path, named in the reasons.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.release import __version__ as ANSIBLE_VERSION

_COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_COLLECTION_PARTS = ("galaxy.yml", "MANIFEST.json", "plugins", "roles", "playbooks")


def tree_digest(root):
    """SHA-256 over the relative path and content of every file of the collection's parts under ``root``."""
    digest = hashlib.sha256()
    for part in _COLLECTION_PARTS:
        top = os.path.join(root, part)
        paths = [top] if os.path.isfile(top) else []
        for directory, dirs, names in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            paths.extend(os.path.join(directory, n) for n in sorted(names) if not n.endswith(".pyc"))
        for path in paths:
            digest.update(os.path.relpath(path, root).encode("utf-8") + b"\0")
            with open(path, "rb") as fh:
                digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def collection_digest():
    """This collection's tree_digest, once per controller process (not once per host)."""
    return tree_digest(_COLLECTION_ROOT)


def _plain(value):
    """JSON-able form of a templated value (vaulted and tagged strings as their text)."""
    if isinstance(value, dict):
        return dict((to_text(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return to_text(value)


def inputs_digest(names_values, collection):
    payload = json.dumps(dict(settings=names_values, collection=collection, ansible=ANSIBLE_VERSION),
                         sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def setting_names(task_vars, runtime):
    """The host's settings: its owlat_* variables, but none a task of this run set (set_fact, register). Those are
    results, not inputs (adopt.yml, say, runs site.yml after plays of its own)."""
    return sorted(n for n in task_vars if n.startswith("owlat_") and n not in runtime)


def runtime_names(task, host):
    """Names set by tasks of this run on host: the variable manager's set_fact/register cache (private in
    ansible-core, the same from 2.17 to 2.21); empty when it cannot be read, which only widens the digest."""
    manager = task.get_variable_manager() if hasattr(task, "get_variable_manager") else None
    cache = getattr(manager, "_nonpersistent_fact_cache", None)
    try:
        return frozenset(cache.get(host, {})) if cache is not None else frozenset()
    except AttributeError:
        return frozenset()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("state", "inputs", "path", "stacks", "docker_host", "timeout"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        if args.get("state", "check") == "check":
            # The run's inputs without the facts and results of its tasks: the record play passes this digest back
            # (state=record), so facts the roles set later never enter it.
            task_vars = task_vars or {}
            settings, unresolved = {}, []
            for name in setting_names(task_vars, runtime_names(self._task, task_vars.get("inventory_hostname"))):
                try:
                    settings[name] = _plain(self._templar.template(task_vars[name]))
                except Exception:  # an undefined variable, a failing lookup: the full path will say what is wrong
                    unresolved.append(name)
            if unresolved:
                result.update(changed=False, converged=False, stacks={}, recorded_at=None, inputs=None,
                              reasons=["setting %s cannot be evaluated before the facts are gathered"
                                       % ", ".join(unresolved[:3])])
                return result
            args["inputs"] = inputs_digest(settings, collection_digest())
        result.update(self._execute_module(module_name="owlat.selfhost.owlat_converged", module_args=args,
                                           task_vars=task_vars))
        result["inputs"] = args.get("inputs")
        return result
