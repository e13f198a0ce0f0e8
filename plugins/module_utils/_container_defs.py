# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""Controller-side helpers of the stack role's one container path (roles/stack/tasks/containers.yml):
the digest of a rendered definition, the per-container result of a docker_container loop, and a failure told
without secret values."""

from __future__ import annotations

import hashlib
import json
import re

# Environment names whose values are secrets even when they are not among the stack's generated secrets
# (a database URL with its password, an S3 secret key, an operator's extra env).
_SECRET_ENV = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|KEY|CREDENTIAL|_URL$", re.I)
REDACTED = "<redacted>"


# The options the container task passes (roles/stack/tasks/containers.yml); any other key would be ignored there.
OPTIONS = frozenset((
    "name", "image", "state", "user", "command", "env", "volumes", "labels", "read_only", "tmpfs", "cap_drop",
    "capabilities", "published_ports", "healthcheck", "memory", "networks", "network_mode", "etc_hosts",
    "security_opts", "stop_signal", "stop_timeout", "restart_policy",
))


def digest(definition, task_text=""):
    """sha256 of the task file and the definition as canonical JSON: any rendered option that changes, changes it."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((task_text + "\n" + canonical).encode("utf-8")).hexdigest()


def digests(definitions, task_text=""):
    for key, definition in (definitions or {}).items():
        unknown = sorted(set(definition or {}) - OPTIONS)
        missing = sorted({"name", "image", "state"} - set(definition or {}))
        if unknown or missing:
            raise ValueError(
                "container definition %r: %s" % (key, "; ".join(
                    (["unknown option(s) %s (the container task passes only %s)" % (", ".join(unknown), ", ".join(sorted(OPTIONS)))] if unknown else [])
                    + (["missing %s" % ", ".join(missing)] if missing else [])))
            )
    return {key: digest(definition, task_text) for key, definition in (definitions or {}).items()}


def _address(container):
    networks = ((container or {}).get("NetworkSettings") or {}).get("Networks") or {}
    mode = ((container or {}).get("HostConfig") or {}).get("NetworkMode")
    ordered = ([networks[mode]] if mode in networks else []) + list(networks.values())
    for network in ordered:
        if (network or {}).get("IPAddress"):
            return network["IPAddress"]
    return None


def results(run, probe, field=None):
    """Per container key of one loop: changed, skipped and its address (from the run, or the probe when skipped).
    With field='ip', key -> address for the containers that have one. Never the inspect data (it holds the env)."""
    seen = (probe or {}).get("containers") or {}
    out = {}
    for result in (run or {}).get("results") or []:
        key = result.get("item")
        skipped = bool(result.get("skipped"))
        ip = _address(result.get("container"))
        if ip is None and skipped:
            ip = (seen.get(key) or {}).get("ip")
        out[key] = {"changed": bool(result.get("changed")), "skipped": skipped, "ip": ip}
    if field:
        return {key: value[field] for key, value in out.items() if value.get(field)}
    return out


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def secret_values(definitions, secrets):
    values = set(_strings(secrets))
    for definition in (definitions or {}).values():
        for name, value in ((definition or {}).get("env") or {}).items():
            if _SECRET_ENV.search(str(name)):
                values.update(_strings(value))
    # Longest first: a URL holding a password is removed whole, not around the password.
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def redact(text, values):
    text = str(text)
    for value in values:
        text = text.replace(value, REDACTED)
    return text


def failures(failed_result, definitions, secrets):
    """One sentence per failed container: its name, the error without secret values, what to do next."""
    values = secret_values(definitions, secrets)
    failed_result = failed_result or {}
    lines = []
    for result in failed_result.get("results") or []:
        if not result.get("failed"):
            continue
        key = result.get("item")
        name = ((definitions or {}).get(key) or {}).get("name", key)
        message = result.get("msg") or result.get("stderr") or "failed without a message"
        lines.append(
            "container %s (service %s) failed: %s. Fix what the error names and re-run; the container's own "
            "output: docker logs %s" % (name, key, redact(message, values).strip(), name)
        )
    if not lines:
        lines.append("the container task failed: %s" % redact(failed_result.get("msg") or "no message", values).strip())
    return " ".join(lines)
