# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""Talking to a self-hosted Convex backend with an admin key, and planning deployment-env changes.

Error messages built here carry HTTP statuses, Convex error codes/messages and variable names, never
admin keys or variable values.

Private to this collection: no compatibility promise outside it.
"""

from __future__ import annotations

import re

from ansible_collections.owlat.selfhost.plugins.module_utils._http import HttpError, request, shorten

ADMIN_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+\|[0-9a-f]+\Z")
# Anything that looks like an admin key, to scrub it from text shown to the operator.
_ADMIN_KEY_ANYWHERE = re.compile(r"[A-Za-z0-9_-]+\|[0-9a-f]{16,}")

ENV_NAME_RE = re.compile(r"^[a-zA-Z_]+[a-zA-Z0-9_]*\Z")
ENV_NAME_MAX = 256
ENV_VALUE_MAX = 8192
ENV_MAX_VARS = 512
BUILTIN_ENV = frozenset(["CONVEX_SITE_URL", "CONVEX_CLOUD_URL"])


class ConvexError(Exception):
    """The backend answered with an unexpected status, or not at all (``status`` is None)."""

    def __init__(self, message, status=None, code=None):
        super().__init__(message)
        self.status = status
        self.code = code


def redact_admin_keys(text):
    return _ADMIN_KEY_ANYWHERE.sub("<admin key>", text or "")


def admin_key_from_output(stdout):
    """The admin key printed by ``generate_admin_key.sh``: its last non-empty stdout line, or None."""
    lines = [line.strip() for line in (stdout or "").splitlines() if line.strip()]
    if lines and ADMIN_KEY_RE.match(lines[-1]):
        return lines[-1]
    return None


def describe_answer(response):
    """``HTTP 401 BadAdminKey: message`` from a Convex error body, else the status and a body excerpt."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and "code" in data:
        text = "HTTP %d %s: %s" % (response.status, data.get("code"), data.get("message", ""))
    else:
        text = "HTTP %d: %s" % (response.status, response.excerpt(200))
    return shorten(redact_admin_keys(text), 300)


class ConvexClient:
    def __init__(self, url, admin_key=None, timeout=30):
        self.url = url.rstrip("/")
        self.admin_key = admin_key
        self.timeout = timeout

    def call(self, method, path, json_body=None, admin_key=None):
        key = admin_key or self.admin_key
        headers = {"Authorization": "Convex %s" % key} if key else {}
        try:
            return request(self.url + path, method=method, headers=headers, json_body=json_body, timeout=self.timeout)
        except ValueError as exc:
            raise ConvexError("invalid backend URL: %s" % exc)
        except HttpError as exc:
            raise ConvexError("Convex backend at %s is unreachable: %s" % (self.url, exc))

    def check_admin_key(self, key=None):
        """True for a valid key, False for one this backend refuses (401/403); ConvexError otherwise."""
        response = self.call("GET", "/api/check_admin_key", admin_key=key)
        if response.status == 200:
            return True
        if response.status in (401, 403):
            return False
        raise ConvexError(
            "unexpected answer from %s/api/check_admin_key: %s" % (self.url, describe_answer(response)),
            status=response.status,
        )

    def _admin_call(self, method, path, json_body=None):
        response = self.call(method, path, json_body=json_body)
        if response.status == 200:
            return response
        code = None
        try:
            data = response.json()
            code = data.get("code") if isinstance(data, dict) else None
        except ValueError:
            pass
        hint = ""
        if response.status in (401, 403):
            hint = " (the admin key was refused: mint a new one with convex_admin_key)"
        raise ConvexError(
            "%s %s%s failed: %s%s" % (method, self.url, path, describe_answer(response), hint),
            status=response.status,
            code=code,
        )

    def list_env(self):
        response = self._admin_call("GET", "/api/v1/list_environment_variables")
        try:
            data = response.json()
            env = data["environmentVariables"]
        except (ValueError, KeyError, TypeError):
            raise ConvexError("unexpected answer from list_environment_variables: no environmentVariables object")
        if not isinstance(env, dict):
            raise ConvexError("unexpected answer from list_environment_variables: environmentVariables is not an object")
        return env

    def update_env(self, changes):
        self._admin_call("POST", "/api/v1/update_environment_variables", json_body={"changes": changes})


def env_name_problem(name):
    """Why ``name`` cannot be a deployment variable, or None."""
    if not isinstance(name, str) or not ENV_NAME_RE.match(name):
        return "%r is not a valid name (letters, digits and _, not starting with a digit)" % (name,)
    if len(name) > ENV_NAME_MAX:
        return "%s... is longer than %d characters" % (name[:40], ENV_NAME_MAX)
    if name in BUILTIN_ENV:
        return "%s is built into Convex and cannot be set" % name
    return None


def normalize_value(value):
    """Deployment variables are strings: booleans become true/false, numbers their text; None stays None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raise TypeError(type(value).__name__)


class EnvPlan:
    def __init__(self):
        self.added = []
        self.updated = []
        self.removed = []
        self.changes = []
        self.managed = []

    @property
    def needed(self):
        return bool(self.changes)


def plan_env(current, desired, managed, prune=True):
    """Compare the deployment env with ``desired``.

    ``current``: what the backend has. ``desired``: name -> string, or None to make sure a name is
    absent. ``managed``: names an earlier run set. With ``prune``, managed names no longer in
    ``desired`` are removed; names never managed are never touched unless named in ``desired``.
    Returns an :class:`EnvPlan` with the name lists, the ``changes`` payload and the managed names
    to remember afterwards.
    """
    plan = EnvPlan()
    for name in sorted(desired):
        value = desired[name]
        if value is None:
            if name in current:
                plan.removed.append(name)
                plan.changes.append({"name": name, "value": None})
        elif name not in current:
            plan.added.append(name)
            plan.changes.append({"name": name, "value": value})
        elif current[name] != value:
            plan.updated.append(name)
            plan.changes.append({"name": name, "value": value})
    kept = set(name for name, value in desired.items() if value is not None)
    for name in sorted(set(managed) - set(desired)):
        if not prune:
            kept.add(name)
        elif name in current:
            plan.removed.append(name)
            plan.changes.append({"name": name, "value": None})
    plan.removed.sort()
    plan.managed = sorted(kept)
    return plan
