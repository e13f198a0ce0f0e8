#!/usr/bin/python3
# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""owlat-stack-exporter: the Owlat stacks of this host as Prometheus textfile metrics and file_sd targets.

Runs as root (it reads the Docker socket and the deploy records) so that Prometheus itself needs no
access to the Docker socket. Every ``--interval`` seconds, for each stack (a deploy record
``<facts dir>/owlat_<stack>.fact`` or a ``--stack`` argument):

* ``<textfile dir>/owlat_stack_<stack>.prom`` for node-exporter's textfile collector:
  ``owlat_release_info{stack,version,functions_release}`` from the deploy record, and per container
  ``owlat_container_running``, ``owlat_container_healthy``, ``owlat_container_restart_count``,
  ``owlat_container_memory_working_set_bytes``, ``owlat_container_memory_limit_bytes``;
* ``<targets dir>/<stack>.json``: one file_sd target per running container (its address on the
  ``<stack>-net`` network, labels ``stack`` and ``service``; from the record's description of the service, where
  its health check and metrics are: ``__health_module``, ``__health_target``, ``__metrics_address``,
  ``__metrics_path``), for the scrape and probe jobs.

Containers of a stack are the ones labelled ``owlat.stack=<stack>`` (service: ``owlat.service``); unlabelled
ones (deployed before the labels) only under the names the deploy record's description lists. One-shot jobs of
the description are skipped. A stopped container stays listed (running 0) until it is removed. Standard library
only; Python 3.8+.
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import re
import socket
import sys
import tempfile
import time
from urllib.parse import quote

STACK_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class DockerError(Exception):
    """The Docker API could not be reached or answered with an error."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class Docker:
    """Minimal read-only client of the Engine API over its Unix socket."""

    def __init__(self, path="/var/run/docker.sock", timeout=10.0):
        self.path = path
        self.timeout = timeout

    def get(self, url):
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request("GET", url)
            resp = conn.getresponse()
            body = resp.read()
        except OSError as exc:
            raise DockerError("docker socket %s: %s" % (self.path, exc)) from exc
        finally:
            conn.close()
        if resp.status != 200:
            raise DockerError("GET %s: HTTP %s" % (url.split("?")[0], resp.status))
        return json.loads(body.decode("utf-8"))

    def containers(self):
        return self.get("/containers/json?all=1")

    def inspect(self, ident):
        return self.get("/containers/%s/json" % quote(ident, safe=""))

    def stats(self, ident):
        # one-shot: no second sample (and no one-second wait); memory needs only one.
        return self.get("/containers/%s/stats?stream=false&one-shot=true" % quote(ident, safe=""))


def read_records(facts_dir):
    """Deploy records {stack: record} written by the stack role (JSON .fact files)."""
    records = {}
    for path in sorted(glob.glob(os.path.join(facts_dir, "owlat_*.fact"))):
        try:
            with open(path, encoding="utf-8") as fh:
                record = json.load(fh)
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict):
            continue
        stack = record.get("stack") or os.path.basename(path)[len("owlat_"):-len(".fact")]
        if STACK_RE.match(str(stack)):
            records[str(stack)] = record
    return records


def working_set(stats):
    """Memory in use as `docker stats` shows it: usage minus inactive page cache (cgroup v1 and v2)."""
    mem = stats.get("memory_stats") or {}
    usage = mem.get("usage")
    if usage is None:
        return None
    detail = mem.get("stats") or {}
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    return max(int(usage) - int(inactive), 0)


# The container keys of records written before they described their stack (the same list as
# plugins/module_utils/_status.py RECORDLESS_SERVICES; a unit test keeps the two equal).
RECORDLESS_SERVICES = {"convex": {}, "web": {}, "mta": {}, "redis": {}, "caddy": {}, "clamav": {},
                       "convex-dashboard": {}, "convex-deploy": {"job": True}, "web-next": {}}


def described_services(record):
    """{service: spec} of a deploy record's description of its stack; records before it: RECORDLESS_SERVICES."""
    services = (record or {}).get("services")
    if isinstance(services, list) and services:
        return {str(s["name"]): s.get("spec") or {} for s in services if isinstance(s, dict) and s.get("name")}
    return RECORDLESS_SERVICES


def owner(summary, stacks, described):
    """(stack, service) a container belongs to, or None: by its owlat.stack / owlat.service labels; without them
    (deployed before the labels) only under the exact name <stack>-<key> of a service its stack's description
    names, never by prefix (the rule of the collection's _status.stack_member)."""
    labels = summary.get("Labels") or {}
    if "owlat.stack" in labels:
        stack, service = labels["owlat.stack"], labels.get("owlat.service") or ""
        return (stack, service) if stack in stacks and service else None
    for name in (n.lstrip("/") for n in summary.get("Names") or []):
        for stack in stacks:
            if name.startswith(stack + "-") and name[len(stack) + 1:] in described[stack]:
                return stack, name[len(stack) + 1:]
    return None


def collect(docker, stacks, ignore=(), described=None):
    """{stack: [service dict]} for every container of the stacks; one-shot jobs of the description (and the
    ignored services) skipped."""
    described = {stack: (described or {}).get(stack) or RECORDLESS_SERVICES for stack in stacks}
    found = {stack: [] for stack in stacks}
    for summary in docker.containers():
        mine = owner(summary, stacks, described)
        if mine is None:
            continue
        stack, service = mine
        if service in ignore or (described[stack].get(service) or {}).get("job"):
            continue
        found[stack].append(describe(docker, stack, service, summary))
    for services in found.values():
        services.sort(key=lambda s: s["service"])
    return found


def describe(docker, stack, service, summary):
    info = docker.inspect(summary["Id"])
    state = info.get("State") or {}
    running = bool(state.get("Running"))
    health = (state.get("Health") or {}).get("Status", "none")
    networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
    out = {
        "service": service,
        "running": running,
        # No healthcheck defined: running is all we know (web and MTA are probed by blackbox instead).
        "healthy": running and health in ("healthy", "none"),
        "restarts": int(info.get("RestartCount") or 0),
        "ip": (networks.get(stack + "-net") or {}).get("IPAddress") or "",
        "memory_limit": int((info.get("HostConfig") or {}).get("Memory") or 0),
        "memory": None,
    }
    if running:
        try:
            out["memory"] = working_set(docker.stats(summary["Id"]))
        except DockerError:
            pass
    return out


def _esc(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_metrics(stack, record, services, now):
    lines = []

    def family(name, kind, text, samples):
        if not samples:
            return
        lines.extend(["# HELP %s %s" % (name, text), "# TYPE %s %s" % (name, kind)])
        for labels, value in samples:
            body = ",".join('%s="%s"' % (k, _esc(v)) for k, v in labels)
            lines.append("%s{%s} %s" % (name, body, value))

    if record:
        family("owlat_release_info", "gauge", "Owlat release of the stack's deploy record (always 1).", [
            ([("stack", stack), ("version", record.get("release") or ""),
              ("functions_release", record.get("functions_release") or record.get("release") or "")], 1)])
    per = [(svc, [("stack", stack), ("service", svc["service"])]) for svc in services]
    family("owlat_container_running", "gauge", "1 when the stack's container runs.",
           [(labels, int(svc["running"])) for svc, labels in per])
    family("owlat_container_healthy", "gauge", "1 when the container runs and its healthcheck (if any) passes.",
           [(labels, int(svc["healthy"])) for svc, labels in per])
    family("owlat_container_restart_count", "gauge", "Restarts of the container since it was created.",
           [(labels, svc["restarts"]) for svc, labels in per])
    family("owlat_container_memory_working_set_bytes", "gauge", "Memory in use (without inactive page cache).",
           [(labels, svc["memory"]) for svc, labels in per if svc["memory"] is not None])
    family("owlat_container_memory_limit_bytes", "gauge", "Memory limit of the container (only when one is set).",
           [(labels, svc["memory_limit"]) for svc, labels in per if svc["memory_limit"] > 0])
    family("owlat_stack_exporter_last_run_timestamp_seconds", "gauge", "When this file was written.",
           [([("stack", stack)], "%.3f" % now)])
    return "\n".join(lines) + "\n"


# The blackbox module of each kind of health check the stack's description names (roles/monitoring/templates/blackbox.yml.j2).
HEALTH_MODULES = {"http": "http_2xx", "mta": "mta_health", "tcp": "tcp_connect", "clamd": "clamd_ping"}


def target_labels(stack, service, ip, spec):
    """file_sd labels of a running container: stack and service, and from the description of its service (the deploy
    record's) where its health check and metrics are - labels starting with __, which Prometheus drops after
    relabelling. A record written before the description had ports lists none: its services are neither probed nor
    scraped until site.yml writes the record again."""
    labels = {"stack": stack, "service": service}
    port, health = spec.get("port"), spec.get("health") or {}
    if port and health.get("kind") in HEALTH_MODULES:
        address = "%s:%s" % (ip, port)
        labels["__health_module"] = HEALTH_MODULES[health["kind"]]
        labels["__health_target"] = "http://%s%s" % (address, health.get("path") or "/") if health["kind"] in ("http", "mta") else address
    if port and spec.get("metrics"):
        labels["__metrics_address"] = "%s:%s" % (ip, port)
        labels["__metrics_path"] = spec["metrics"]
    return labels


def render_targets(stack, services, described=None):
    described = described or {}
    targets = [{"targets": [svc["ip"]], "labels": target_labels(stack, svc["service"], svc["ip"], described.get(svc["service"]) or {})}
               for svc in services if svc["running"] and svc["ip"]]
    return json.dumps(targets, indent=2, sort_keys=True) + "\n"


def write_if_changed(path, text, mode=0o644):
    """Atomic replace; unchanged content is not rewritten (Prometheus re-reads file_sd on every change)."""
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return False
    except OSError:
        pass
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def run_once(args, docker, now=None):
    now = time.time() if now is None else now
    records = read_records(args.facts_dir)
    stacks = sorted(set(records) | set(args.stack))
    docker_up = 1
    described = {stack: described_services(records.get(stack)) for stack in stacks}
    try:
        found = collect(docker, stacks, tuple(args.ignore), described)
    except DockerError as exc:
        print("owlat-stack-exporter: %s" % exc, file=sys.stderr)
        docker_up, found = 0, None
    for stack in stacks:
        # Without Docker the container lines are dropped (not reported as stopped): the release stays.
        services = found[stack] if found is not None else []
        text = render_metrics(stack, records.get(stack), services, now)
        text += ("# HELP owlat_stack_exporter_docker_up 1 when the Docker API answered.\n"
                 "# TYPE owlat_stack_exporter_docker_up gauge\n"
                 'owlat_stack_exporter_docker_up{stack="%s"} %d\n' % (_esc(stack), docker_up))
        write_if_changed(os.path.join(args.textfile_dir, "owlat_stack_%s.prom" % stack), text)
        if found is not None:
            write_if_changed(os.path.join(args.targets_dir, "%s.json" % stack), render_targets(stack, services, described[stack]))
    return stacks


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts-dir", default="/etc/ansible/facts.d")
    parser.add_argument("--textfile-dir", default="/var/lib/prometheus/node-exporter")
    parser.add_argument("--targets-dir", default="/var/lib/owlat/monitoring/targets")
    parser.add_argument("--docker-socket", default="/var/run/docker.sock")
    parser.add_argument("--stack", action="append", default=[], help="a stack to watch even without a deploy record")
    parser.add_argument("--ignore", action="append", default=[], help="a service (one-shot container) to skip")
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--once", action="store_true")
    args = parser.parse_args(argv)
    bad = [s for s in args.stack if not STACK_RE.match(s)]
    if bad:
        parser.error("invalid stack name(s): %s" % ", ".join(bad))
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    docker = Docker(args.docker_socket)
    while True:
        run_once(args, docker)
        if args.once:
            return 0
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
