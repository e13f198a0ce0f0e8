# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""The host as a converged site.yml run left it, and whether it still is (owlat_converged).

After a run that applied every stack of a host, the host's actual state is recorded: its stacks' containers (id,
image, running, health), networks and volumes, every file the roles manage (kind, mode, owner, digest), the owlat
systemd units (active, enabled), the host's addresses, and the digest of each Convex deployment's managed
environment. A later run finds the host converged when the run's inputs (settings and collection, digested on the
controller) are the recorded ones and the host still reads the same; anything else - a stopped, removed or
recreated container, an edited file, a timer switched off, a deployment variable changed through the API - sends
the host down the full path, which repairs it and records again.

Private to this collection: no compatibility promise outside it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from urllib.parse import quote

from ansible_collections.owlat.selfhost.plugins.module_utils._files import file_state
from ansible_collections.owlat.selfhost.plugins.module_utils._stack_state import convex_state, walk
from ansible_collections.owlat.selfhost.plugins.module_utils._status import STACK_LABEL, DockerError, container_facts

RECORD_VERSION = 1
# Host-wide things the roles write besides the stacks' configuration directories (docker role, backup role, deploy
# records, the host's Caddy): globs, so a file that appears (an interrupted upgrade's marker) counts too.
HOST_GLOBS = (
    # The OS release (the roles read it as facts: Docker's apt repository, the platform check).
    "/usr/lib/os-release",
    "/etc/docker/daemon.json",
    "/etc/docker/owlat-*",
    "/etc/docker/certs.d/*",
    "/etc/ansible/facts.d/owlat*",
    "/etc/owlat-backup",
    "/usr/local/sbin/owlat-backup",
    "/etc/systemd/system/owlat-backup*",
    "/etc/systemd/system/*.wants/owlat-*",
)
UNIT_GLOB = "/etc/systemd/system/owlat-*.timer"
_HEALTH_RE = re.compile(r"\((healthy|unhealthy|health: starting)\)")
REASONS_MAX = 8


def _health(status):
    match = _HEALTH_RE.search(status or "")
    return match.group(1) if match else None


def containers(api, names):
    """name -> [id, image id, state, health, image id its reference names today] of every container labelled with
    a stack or as the host's Caddy, or named in ``names`` (containers made before the roles labelled them). The last
    one catches an image pulled anew under the same reference, which the full run would roll out."""
    out, image_ids = {}, {}
    for item in api.get("/containers/json?all=1"):
        labels = item.get("Labels") or {}
        name = ((item.get("Names") or ["/?"])[0]).lstrip("/")
        if STACK_LABEL in labels or "owlat.proxy" in labels or name in names:
            ref = item.get("Image") or ""
            if ref not in image_ids:
                try:
                    image_ids[ref] = api.get("/images/%s/json" % quote(ref, safe="/:@")).get("Id")
                except DockerError:
                    image_ids[ref] = None
            out[name] = [item.get("Id"), item.get("ImageID"), item.get("State"), _health(item.get("Status")),
                         image_ids[ref]]
    return out


def labelled(api, kind):
    filters = quote(json.dumps({"label": [STACK_LABEL]}))
    items = api.get("/%s?filters=%s" % (kind, filters))
    if kind == "volumes":
        return sorted(v["Name"] for v in items.get("Volumes") or [])
    return dict(sorted((n["Name"], n["Id"]) for n in items))


def files(paths):
    """path -> [kind, mode, uid, gid, sha256] for every path and glob match, directories walked three levels."""
    out = {}
    for pattern in paths:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        for path in matches:
            states = {path: file_state(path)}
            if states[path]["kind"] == "directory":
                states.update(walk(path, depth=3))
            for p, s in states.items():
                out[p] = [s["kind"], s.get("mode"), s.get("uid"), s.get("gid"), s.get("sha256")]
    return out


def units(run):
    """unit -> [active state, unit file state] of docker.service and every owlat timer. ``run`` is
    AnsibleModule.run_command (args -> rc, stdout, stderr)."""
    names = ["docker.service"] + sorted(os.path.basename(p) for p in glob.glob(UNIT_GLOB))
    rc, stdout, stderr = run(["systemctl", "show", "--property=Id,ActiveState,UnitFileState"] + names)
    if rc != 0:
        return {"systemctl": ["unreadable", (stderr or "")[:80]]}
    out, current = {}, {}
    for line in (stdout + "\n").splitlines():
        if not line.strip():
            if current.get("Id"):
                out[current["Id"]] = [current.get("ActiveState"), current.get("UnitFileState")]
            current = {}
            continue
        key, dummy, value = line.partition("=")
        current[key] = value
    return out


def addresses(run):
    """The host's addresses, without IPv6 link-local ones (every container's veth gets a new one when it restarts)."""
    rc, stdout, stderr = run(["ip", "-o", "addr", "show"])
    if rc != 0:
        return ["unreadable: %s" % (stderr or "")[:80]]
    return sorted(set(m.group(1) for m in re.finditer(r"\binet6? (\S+)", stdout)
                      if not m.group(1).lower().startswith("fe80:")))


def env_digest(spec, probe):
    """Digest of the names and values the roles manage in the deployment's environment (never the values)."""
    state = convex_state(dict(spec, timeout=spec.get("timeout", 10)), probe)
    if state.get("env") is None or state.get("managed") is None:
        return "unreadable: %s" % (state.get("error") or "no managed names")
    managed = dict((n, state["env"].get(n)) for n in sorted(state["managed"]))
    return hashlib.sha256(json.dumps(managed, sort_keys=True).encode("utf-8")).hexdigest()


def fingerprint(api, spec, run):
    """The host's state as ``spec`` (the record's stacks: their containers, paths and Convex deployment) says to
    read it."""
    stacks = spec.get("stacks") or []
    out = dict(engine=True, containers={}, networks={}, volumes=[], convex={})
    try:
        out["containers"] = containers(api, set(c for s in stacks for c in s.get("containers") or []))
        out["networks"] = labelled(api, "networks")
        out["volumes"] = labelled(api, "volumes")
        for stack in stacks:
            if stack.get("convex"):
                backend = "%s-%s" % (stack["name"], stack["convex"].get("service", "convex"))
                probe = {}
                if backend in out["containers"]:
                    inspect = api.get("/containers/%s/json" % quote(backend))
                    probe[stack["convex"].get("service", "convex")] = container_facts(
                        inspect, stack.get("network") or stack["name"] + "-net", {})
                out["convex"][stack["name"]] = env_digest(stack["convex"], probe)
    except DockerError as exc:
        out = dict(engine=False, engine_error=str(exc))
    out["files"] = files(sorted(set(p for s in stacks for p in s.get("paths") or [])) + list(HOST_GLOBS))
    out["units"] = units(run)
    out["addresses"] = addresses(run)
    return out


def _changed_keys(before, after):
    before, after = before or {}, after or {}
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def differences(recorded, current):
    """What differs between the recorded fingerprint and the current one, in words an operator can act on."""
    if not current.get("engine", True):
        return ["the Docker Engine did not answer (%s)" % current.get("engine_error", "?")]
    out = []
    for name in _changed_keys(recorded.get("containers"), current.get("containers")):
        was, now = (recorded.get("containers") or {}).get(name), (current.get("containers") or {}).get(name)
        if now is None:
            out.append("container %s is gone" % name)
        elif was is None:
            out.append("container %s is new" % name)
        elif was[0] != now[0]:
            out.append("container %s was recreated" % name)
        elif was[1:3] == now[1:3] and was[3] == now[3]:
            out.append("container %s: its image reference now names another image" % name)
        else:
            out.append("container %s is %s%s (was %s%s)" % (name, now[2], " %s" % now[3] if now[3] else "",
                                                            was[2], " %s" % was[3] if was[3] else ""))
    out += ["network %s changed" % n for n in _changed_keys(recorded.get("networks"), current.get("networks"))]
    if recorded.get("volumes") != current.get("volumes"):
        out.append("the stacks' volumes changed")
    out += ["file %s changed" % p for p in _changed_keys(recorded.get("files"), current.get("files"))]
    out += ["unit %s changed" % u for u in _changed_keys(recorded.get("units"), current.get("units"))]
    if recorded.get("addresses") != current.get("addresses"):
        out.append("the host's addresses changed")
    out += ["the Convex deployment environment of stack %s changed" % s
            for s in _changed_keys(recorded.get("convex"), current.get("convex"))]
    if len(out) > REASONS_MAX:
        out = out[:REASONS_MAX] + ["and %d more" % (len(out) - REASONS_MAX)]
    return out


def stack_counts(spec, current):
    """stack -> {running: n} of its described containers, from the current read, for the run's table."""
    out = {}
    for stack in spec.get("stacks") or []:
        names = stack.get("containers") or []
        out[stack["name"]] = dict(running=sum(1 for n, c in (current.get("containers") or {}).items()
                                              if n in names and c[2] == "running"))
    return out


def write_record(path, record):
    """The record, root-only (0600), replaced atomically. Its directory is made world-readable (0755) when missing:
    /var/lib/owlat also holds what others read (the monitoring agent's scrape targets)."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh, sort_keys=True)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def check(api, record, inputs, run):
    """(converged, reasons, counts) of the host against its record and this run's inputs."""
    if not record or record.get("version") != RECORD_VERSION:
        return False, ["no record of a converged run"], {}
    if record.get("inputs") != inputs:
        return False, ["the settings or the collection changed since the run of %s" % record.get("recorded_at", "?")], {}
    current = fingerprint(api, record.get("spec") or {}, run)
    reasons = differences(record.get("state") or {}, current)
    return not reasons, reasons, stack_counts(record.get("spec") or {}, current)
