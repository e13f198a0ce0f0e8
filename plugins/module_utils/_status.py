# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""Read-only status of the Owlat stacks on one host, for the ``owlat_status`` module.

Everything is read in one pass with the standard library only (the module must run on a bare
``python3``): the deploy records under ``/etc/ansible/facts.d``, the containers through the Docker
Engine API on its unix socket, the backup status files, ``statvfs`` of the file systems, and the
TLS certificate each public host name is served with.

The certificate's expiry is read from the DER bytes the server sent (``getpeercert(binary_form=True)``,
which works without verification — Caddy's internal CA is not trusted by the host): a minimal DER
walk down to ``tbsCertificate.validity.notAfter`` (RFC 5280 4.1). The standard library has no public
certificate parser, ``cryptography`` is not on a bare host, and the private ``ssl._ssl._test_decode_cert``
needs a temporary PEM file and may go away.

Private to this collection: no compatibility promise outside it.
"""

from __future__ import annotations

import datetime
import glob
import http.client
import json
import math
import os
import re
import socket
import ssl
import time
from urllib.parse import quote

from ansible_collections.owlat.selfhost.plugins.module_utils._http import describe_error, shorten

# A stack's services as the stack role describes them (owlat_stack_services, kept in the deploy record's
# `services`): container key -> image (key of the release's images), required (must run), job (one-shot, leaves no
# container on success: never a service row), data (its volumes). This is the description for records written
# before they carried it.
RECORDLESS_SERVICES = {
    "convex": {"image": "convex_backend", "required": True, "data": ["convex-data"]},
    "web": {"image": "web", "required": True},
    "mta": {"image": "mta", "required": True},
    "redis": {"image": "redis", "required": True, "data": ["redis-data"]},
    "caddy": {"image": "caddy", "required": True, "data": ["caddy-data"], "data_live": True},
    "clamav": {"image": "clamav"},
    "convex-dashboard": {"image": "convex_dashboard"},
    "convex-deploy": {"image": "convex_deploy", "job": True},
    "web-next": {},
}


def services_of(record):
    """The service description of a stack, in its order: its deploy record's (a list of {name, spec}: the record
    is JSON with sorted keys), else the one of records that carried none."""
    services = (record or {}).get("services")
    if isinstance(services, list) and services:
        return dict((item["name"], item.get("spec") or {}) for item in services
                    if isinstance(item, dict) and item.get("name"))
    return RECORDLESS_SERVICES


# The label that says which stack a container, volume or network belongs to.
STACK_LABEL = "owlat.stack"
STACK_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
ERROR_MAX = 200


# ------------------------------------------------------------------------------------ Docker API


# The options of every module that reads the Docker Engine API itself (doc fragment owlat.selfhost.docker_api).
DOCKER_API_ARGS = dict(
    docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
    timeout=dict(type="float", default=10),
)


class DockerError(Exception):
    """The Docker Engine API could not be asked or answered with an error."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._owlat_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._owlat_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class DockerAPI:
    """GET requests to the Docker Engine API on a unix socket (unversioned paths: the daemon's own version)."""

    def __init__(self, docker_host="unix:///var/run/docker.sock", timeout=5.0):
        if not docker_host.startswith("unix://"):
            raise DockerError("only unix:// Docker hosts are supported (got %s)" % docker_host)
        self.path = docker_host[len("unix://"):]
        self.timeout = timeout

    def get(self, path):
        conn = _UnixHTTPConnection(self.path, self.timeout)
        try:
            conn.request("GET", path, headers={"Host": "docker"})
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise DockerError("Docker API %s: %s" % (self.path, describe_error(exc)))
        finally:
            conn.close()
        if response.status != 200:
            detail = shorten(body.decode("utf-8", "replace"), 120)
            raise DockerError("Docker API GET %s: HTTP %d %s" % (path.split("?")[0], response.status, detail))
        try:
            return json.loads(body.decode("utf-8"))
        except ValueError:
            raise DockerError("Docker API GET %s: the answer is not JSON" % path.split("?")[0])

    def info(self):
        return self.get("/info")

    def stack_containers(self, stack, services=None):
        """Inspect data of every container of ``stack`` (see stack_member), by name without the leading slash."""
        found = {}
        for filters in ({"label": ["%s=%s" % (STACK_LABEL, stack)]}, {"name": ["^/%s-" % re.escape(stack)]}):
            for item in self.get("/containers/json?all=1&filters=" + quote(json.dumps(filters))):
                name = stack_member(item, stack, services)
                if name is not None:
                    found[name] = item["Id"]
        return dict((name, self.get("/containers/%s/json" % quote(cid))) for name, cid in sorted(found.items()))


def stack_member(item, stack, services=None):
    """The name under which a container (an entry of the Engine API's container list: Names, Labels) belongs to
    ``stack``, or None: by its ``owlat.stack`` label; without the label (made before the roles labelled them) only
    under the exact name ``<stack>-<key>`` of a container the stack's description names (``services``), never by
    prefix: stack ``acme`` does not own ``acme-eu-web``."""
    labels = item.get("Labels") or {}
    names = [n.lstrip("/") for n in item.get("Names") or []]
    if STACK_LABEL in labels:
        return names[0] if labels[STACK_LABEL] == stack and names else None
    legacy = set(stack + "-" + key for key in (services or RECORDLESS_SERVICES))
    return next((n for n in names if n in legacy), None)


# ------------------------------------------------------------------------------------ services


def service_state(name, inspect):
    """One service's row from its container's inspect data (or None when there is no container)."""
    if inspect is None:
        return dict(name=name, state="missing", health=None, ok=False, image=None, restarts=0, started_at=None)
    state = inspect.get("State") or {}
    status = state.get("Status") or "unknown"
    health = (state.get("Health") or {}).get("Status")
    if status == "running" and state.get("Restarting"):
        status = "restarting"
    ok = status == "running" and health in (None, "healthy")
    row = dict(
        name=name,
        state=status,
        health=health,
        ok=ok,
        image=(inspect.get("Config") or {}).get("Image"),
        restarts=int(inspect.get("RestartCount") or 0),
        started_at=state.get("StartedAt"),
    )
    if status == "exited":
        row["exit_code"] = state.get("ExitCode")
    return row


def describe_service(row):
    """Short text for a table cell: ok, unhealthy, exited(1), missing ..."""
    if row["ok"]:
        return "ok"
    if row["state"] == "running":
        return row["health"] or "running"
    if row["state"] == "exited":
        return "exited(%s)" % row.get("exit_code")
    return row["state"]


def stack_services(stack, containers, services=None):
    """Rows for the required services (missing ones included), then any other container of the stack: the optional
    services in the description's order, then anything else (a temporary container of an upgrade). Jobs are left out."""
    services = services or RECORDLESS_SERVICES
    prefix = stack + "-"
    required = [key for key, svc in services.items() if (svc or {}).get("required")]
    jobs = set(prefix + key for key, svc in services.items() if (svc or {}).get("job"))
    rows = [service_state(key, containers.get(prefix + key)) for key in required]
    order = dict((prefix + key, i) for i, key in enumerate(services))
    others = [n for n in containers if n not in jobs and n[len(prefix):] not in required]
    for name in sorted(others, key=lambda n: (order.get(n, len(order)), n)):
        rows.append(service_state(name[len(prefix):], containers[name]))
    return rows


def https_port(containers, stack, default=443):
    """The host port Caddy publishes for 443/tcp (the proxy role's owlat_proxy_https_port)."""
    inspect = containers.get(stack + "-caddy") or {}
    bindings = ((inspect.get("HostConfig") or {}).get("PortBindings") or {}).get("443/tcp") or []
    for binding in bindings:
        port = binding.get("HostPort")
        if port and str(port).isdigit():
            return int(port)
    return default


# ------------------------------------------------------------------------------------ deploy record, Caddyfile


def discover_stacks(facts_dir):
    """Stack names with a deploy record (owlat_<stack>.fact), sorted."""
    names = []
    for path in glob.glob(os.path.join(facts_dir, "owlat_*.fact")):
        name = os.path.basename(path)[len("owlat_"):-len(".fact")]
        if STACK_NAME_RE.match(name):
            names.append(name)
    return sorted(names)


def read_record(facts_dir, stack):
    """(record dict or None, error text or None)."""
    path = os.path.join(facts_dir, "owlat_%s.fact" % stack)
    try:
        with open(path, "r", encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, "%s: %s" % (path, shorten(str(exc), ERROR_MAX))
    if not isinstance(data, dict):
        return None, "%s: not a JSON object" % path
    return data, None


_SITE_RE = re.compile(r"^([^\s{#][^{#]*?)\s*\{\s*$")


def caddy_hostnames(text):
    """Site addresses of a Caddyfile written by the proxy role: top-level ``name[, name] {`` lines."""
    names = []
    depth = 0
    for line in (text or "").splitlines():
        stripped = line.strip()
        if depth == 0:
            match = _SITE_RE.match(stripped)
            if match:
                for address in match.group(1).split(","):
                    host = address.strip().split("://")[-1].split("/")[0]
                    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
                    if host and host not in names and not host.startswith(("(", "http")):
                        names.append(host)
        depth += stripped.count("{") - stripped.count("}")
        depth = max(depth, 0)
    return names


# ------------------------------------------------------------------------------------ backup status


def backup_status(status_dir, stack, now, max_age_hours):
    """The last backup of a stack from the backup role's status file; state ``never`` when there is none."""
    path = os.path.join(status_dir, "%s.json" % stack)
    try:
        with open(path, "r", encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return dict(state="never", ok=False, age_hours=None, last_success=None, last_run=None)
    except (OSError, ValueError) as exc:
        return dict(state="unreadable", ok=False, age_hours=None, last_success=None, last_run=None,
                    message=shorten("%s: %s" % (path, exc), ERROR_MAX))
    if not isinstance(data, dict):
        return dict(state="unreadable", ok=False, age_hours=None, last_success=None, last_run=None,
                    message="%s: not a JSON object" % path)
    last_success = _number(data.get("last_success"))
    last_run = _number(data.get("last_run"))
    age = round((now - last_success) / 3600.0, 1) if last_success is not None else None
    result = data.get("result")
    state = "failed" if result == "failed" else ("success" if last_success is not None else "never")
    out = dict(
        state=state,
        ok=state == "success" and age is not None and age <= max_age_hours,
        age_hours=age,
        last_success=last_success,
        last_run=last_run,
    )
    for key in ("snapshot_id", "size_bytes", "duration_seconds", "downtime_seconds", "mode"):
        if data.get(key) is not None:
            out[key] = data[key]
    if data.get("message"):
        out["message"] = shorten(data["message"], ERROR_MAX)
    return out


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def describe_backup(backup):
    if backup["state"] in ("never", "unreadable", "moved"):
        return backup["state"]
    age = "-" if backup["age_hours"] is None else _age(backup["age_hours"])
    if backup["state"] == "failed":
        return "FAILED (last ok %s)" % age if backup["age_hours"] is not None else "FAILED"
    return age + ("" if backup["ok"] else " OLD")


def _age(hours):
    if hours < 48:
        return "%dh" % int(hours)
    return "%dd" % int(hours // 24)


# ------------------------------------------------------------------------------------ disks


def disk_usage(path):
    """Use of the file system holding ``path`` (what ``df`` shows: used / (used + available to users))."""
    try:
        st = os.statvfs(path)
        dev = os.stat(path).st_dev
    except OSError as exc:
        return dict(path=path, error=describe_error(exc))
    size = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    usable = used + free
    percent = round(100.0 * used / usable, 1) if usable else 0.0
    return dict(path=path, device=dev, size_bytes=size, used_bytes=used, free_bytes=free, used_percent=percent)


def disks(paths):
    """One entry per file system: a path on the same device as an earlier one is folded into it.
    ``paths`` is a list of (label, path)."""
    out = []
    seen = {}
    for label, path in paths:
        entry = disk_usage(path)
        entry["label"] = label
        dev = entry.get("device")
        if dev is not None and dev in seen:
            seen[dev].setdefault("also", []).append(path)
            continue
        if dev is not None:
            seen[dev] = entry
        out.append(entry)
    for entry in out:
        entry.pop("device", None)
    return out


# ------------------------------------------------------------------------------------ TLS certificates


class DERError(ValueError):
    pass


def _tlv(data, pos):
    """(tag, start of value, end of value) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise DERError("truncated at %d" % pos)
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise DERError("bad length at %d" % pos)
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise DERError("element at %d runs past the end" % pos)
    return tag, pos, pos + length


def _children(data, start, end):
    pos = start
    while pos < end:
        tag, vstart, vend = _tlv(data, pos)
        yield tag, vstart, vend
        pos = vend


def _time(tag, raw):
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ: 50-99 are 19xx (RFC 5280 4.1.2.5.1)
        year = int(text[:2])
        text = ("19" if year >= 50 else "20") + text
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise DERError("validity time has tag 0x%02x" % tag)
    if not text.endswith("Z") or len(text) != 15:
        raise DERError("unsupported time %r" % text)
    return datetime.datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=datetime.timezone.utc)


_OID_CN = bytes((0x55, 0x04, 0x03))  # 2.5.4.3 commonName


def _common_name(data, start, end):
    """The commonName of an X.501 Name (SEQUENCE of SET of SEQUENCE{OID, value}), or None."""
    for _tag, s1, e1 in _children(data, start, end):  # RelativeDistinguishedName (SET)
        for _tag2, s2, e2 in _children(data, s1, e1):  # AttributeTypeAndValue (SEQUENCE)
            parts = list(_children(data, s2, e2))
            if len(parts) == 2 and parts[0][0] == 0x06 and data[parts[0][1]:parts[0][2]] == _OID_CN:
                return data[parts[1][1]:parts[1][2]].decode("utf-8", "replace")
    return None


def parse_certificate(der):
    """notAfter, notBefore, subject and issuer common names of a DER X.509 certificate."""
    der = bytes(der)
    tag, start, end = _tlv(der, 0)
    if tag != 0x30:
        raise DERError("not a certificate (tag 0x%02x)" % tag)
    tag, tstart, tend = _tlv(der, start)  # tbsCertificate
    if tag != 0x30:
        raise DERError("no tbsCertificate")
    fields = list(_children(der, tstart, tend))
    if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject
    if len(fields) < 5 or fields[3][0] != 0x30:
        raise DERError("unexpected tbsCertificate layout")
    times = list(_children(der, fields[3][1], fields[3][2]))
    if len(times) != 2:
        raise DERError("validity must hold two times")
    return dict(
        not_before=_time(times[0][0], der[times[0][1]:times[0][2]]),
        not_after=_time(times[1][0], der[times[1][1]:times[1][2]]),
        issuer=_common_name(der, fields[2][1], fields[2][2]),
        subject=_common_name(der, fields[4][1], fields[4][2]),
    )


def fetch_certificate(hostname, address, port, timeout):
    """The DER certificate served for ``hostname`` (SNI) at address:port. Read only, not checked against a CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, port), timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=hostname) as tls:
            der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("the server sent no certificate")
    return der


def certificate_status(hostname, address, port, timeout, now, fetch=fetch_certificate):
    try:
        cert = parse_certificate(fetch(hostname, address, port, timeout))
    except DERError as exc:
        return dict(hostname=hostname, days_left=None, error="cannot read the certificate: %s" % exc)
    except (OSError, ssl.SSLError) as exc:
        return dict(hostname=hostname, days_left=None, error=describe_error(exc))
    seconds = (cert["not_after"] - now).total_seconds()
    return dict(
        hostname=hostname,
        # Whole days, rounded down: 0 on the last day, negative once expired.
        days_left=int(math.floor(seconds / 86400.0)),
        hours_left=round(seconds / 3600.0, 1),
        lifetime_hours=round((cert["not_after"] - cert["not_before"]).total_seconds() / 3600.0, 1),
        not_after=cert["not_after"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        issuer=cert["issuer"],
        subject=cert["subject"],
    )


def expiry_threshold_hours(cert, min_days):
    """Hours left below which a certificate is a problem: ``min_days``, or a sixth of the certificate's
    lifetime when that is shorter. Short-lived certificates (Caddy's internal CA issues 12-hour ones,
    renewed with a third left) would otherwise always be reported."""
    return min(min_days * 24.0, cert["lifetime_hours"] / 6.0)


def describe_left(hours):
    """``89d``; under two days in hours (``11h``), since short-lived certificates are normal."""
    if hours >= 48 or hours <= -48:
        return "%dd" % math.floor(hours / 24.0)
    return "%dh" % math.floor(hours)


# ------------------------------------------------------------------------------------ the whole host


class HostStatus:
    """Collects the status of every requested (or recorded) stack on this host."""

    def __init__(self, params, docker=None, now=None, fetch=fetch_certificate):
        self.p = params
        self.docker = docker or DockerAPI(params["docker_host"], params["timeout"])
        self.now = time.time() if now is None else now
        self.fetch = fetch

    def collect(self):
        problems = []
        docker = dict(reachable=True)
        root_dir = None
        try:
            info = self.docker.info()
            root_dir = info.get("DockerRootDir")
            docker.update(version=info.get("ServerVersion"), root_dir=root_dir)
        except DockerError as exc:
            docker = dict(reachable=False, error=str(exc))
            problems.append("docker: %s" % exc)
        stacks = self.p["stacks"] or discover_stacks(self.p["facts_dir"])
        results = [self.stack(name, docker["reachable"], problems) for name in stacks]
        paths = [(p, p) for p in self.p["disk_paths"]] + ([("docker", root_dir)] if root_dir else [])
        fs = disks(paths)
        for entry in fs:
            if "error" in entry:
                problems.append("disk %s: %s" % (entry["path"], entry["error"]))
            elif entry["used_percent"] > self.p["disk_max_percent"]:
                problems.append("disk %s %.0f%% used (over %g%%)" % (entry["path"], entry["used_percent"],
                                                                     self.p["disk_max_percent"]))
        rows = [dict(summary_row(st), disk=describe_disks(fs)) for st in results]
        if not rows:
            rows = [dict(stack="-", release="-", services="no Owlat stack on this host", backup="-", tls="-",
                         disk=describe_disks(fs))]
        return dict(changed=False, stacks=results, disks=fs, docker=docker, problems=problems, rows=rows)

    def stack(self, name, docker_ok, problems):
        record, error = read_record(self.p["facts_dir"], name)
        out = dict(
            stack=name,
            deployed=record is not None,
            release=(record or {}).get("release"),
            functions_release=(record or {}).get("functions_release"),
        )
        if error:
            out["record_error"] = error
            problems.append("%s: deploy record %s" % (name, error))
        elif record is None:
            problems.append("%s: no deploy record (not deployed by site.yml yet)" % name)
        moved = (record or {}).get("moved")
        if isinstance(moved, dict) and moved.get("phase") in ("switching", "moved"):
            # The stopped copy move.yml keeps on the stack's old host: its services are down on purpose.
            out.update(moved=moved, services=[], services_ok=True, tls=[], tls_min_days=None,
                       backup=dict(state="moved", ok=True, age_hours=None, last_success=None, last_run=None))
            if moved.get("phase") != "moved":
                problems.append("%s: a move to %s did not finish: run move.yml again" % (name, moved.get("to")))
            return out
        containers = {}
        described = services_of(record)
        if docker_ok:
            try:
                containers = self.docker.stack_containers(name, described)
            except DockerError as exc:
                out["docker_error"] = str(exc)
                problems.append("%s: %s" % (name, exc))
                docker_ok = False
        services = stack_services(name, containers, described) if docker_ok else []
        out["services"] = services
        out["services_ok"] = bool(services) and all(s["ok"] for s in services)
        for svc in services:
            if not svc["ok"]:
                problems.append("%s: %s %s" % (name, svc["name"], describe_service(svc)))
            elif record and (described.get(svc["name"]) or {}).get("image"):
                want = (record.get("images") or {}).get(described[svc["name"]]["image"])
                if want and svc["image"] and want != svc["image"]:
                    svc["image_drift"] = want
                    problems.append("%s: %s runs %s, the deploy record says %s" % (name, svc["name"], svc["image"], want))
        out["backup"] = backup_status(self.p["backup_status_dir"], name, self.now, self.p["backup_max_age_hours"])
        if not out["backup"]["ok"]:
            problems.append("%s: backup %s" % (name, describe_backup(out["backup"])))
        out["tls"] = self.certificates(name, containers, record, problems)
        days = [c["days_left"] for c in out["tls"] if c.get("days_left") is not None]
        out["tls_min_days"] = min(days) if days else None
        return out

    def certificates(self, name, containers, record, problems):
        hostnames = (self.p.get("hostnames") or {}).get(name) or (record or {}).get("hostnames")
        if not hostnames:
            config_dir = (record or {}).get("config_dir") or os.path.join(self.p["config_root"], name)
            try:
                with open(os.path.join(config_dir, "caddy", "Caddyfile"), "r", encoding="utf-8") as fh:
                    hostnames = caddy_hostnames(fh.read())
            except OSError:
                hostnames = []
        if not hostnames or not self.p["tls"]:
            return []
        port = https_port(containers, name, self.p["https_port"])
        now = datetime.datetime.fromtimestamp(self.now, tz=datetime.timezone.utc)
        out = []
        for hostname in hostnames:
            cert = certificate_status(hostname, self.p["tls_address"], port, self.p["timeout"], now, self.fetch)
            if cert.get("error"):
                problems.append("%s: TLS %s: %s" % (name, hostname, cert["error"]))
            elif cert["hours_left"] < expiry_threshold_hours(cert, self.p["tls_min_days"]):
                problems.append("%s: TLS %s expires in %s" % (name, hostname, describe_left(cert["hours_left"])))
            out.append(cert)
        return out


def describe_disks(entries):
    """``/ 41% docker 63%``: one entry per file system (a Docker data root on / is folded into it)."""
    return " ".join("%s %s" % (e["label"], "?" if "error" in e else "%.0f%%" % e["used_percent"]) for e in entries)


def describe_tls(certs):
    """Fewest days left over the stack's host names, or the first error."""
    if not certs:
        return "-"
    errors = [c for c in certs if c.get("error")]
    if errors:
        return "%s: error" % errors[0]["hostname"].split(".")[0]
    return describe_left(min(c["hours_left"] for c in certs))


def summary_row(stack):
    """Text cells for a fleet table (the playbook adds the host column)."""
    return dict(
        stack=stack["stack"],
        release=stack.get("release") or "-",
        services=("moved to %s, copy kept stopped" % stack["moved"].get("to") if stack.get("moved")
                  else ", ".join("%s %s" % (s["name"], describe_service(s)) for s in stack["services"]) or "-"),
        backup=describe_backup(stack["backup"]),
        tls=describe_tls(stack["tls"]),
    )


# ------------------------------------------------------------------------------------ converge probe


def container_facts(inspect, network, image_ids):
    """What the roles need to decide whether a container must go through docker_container again."""
    state = inspect.get("State") or {}
    status = state.get("Status") or "unknown"
    running = status == "running" and not state.get("Restarting")
    health = (state.get("Health") or {}).get("Status")
    image_ref = (inspect.get("Config") or {}).get("Image")
    networks = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
    ip = (networks.get(network) or {}).get("IPAddress") or None
    image_current = bool(image_ref) and image_ids.get(image_ref) == inspect.get("Image")
    labels = (inspect.get("Config") or {}).get("Labels") or {}
    return dict(
        state=status,
        health=health,
        running=running,
        healthy=running and health in (None, "healthy"),
        image=image_ref,
        image_current=image_current,
        ip=ip,
        # Running on the image its reference names today and attached to the stack network.
        settled=running and image_current and ip is not None,
        # Carries the stack's identity label (containers made before the roles labelled them do not).
        labelled=STACK_LABEL in labels,
    )


def stack_volumes(api, stack):
    """Names of the volumes named ``<stack>-...``: the roles create (labelled) a named volume of a container
    definition only when its exact name is not among them. Existence only, so a name is enough here."""
    listed = api.get("/volumes?filters=%s" % quote(json.dumps({"name": [stack + "-"]}))).get("Volumes") or []
    return sorted(v["Name"] for v in listed if v.get("Name", "").startswith(stack + "-"))


def probe_stack(api, stack, network, services=None):
    """One pass over a stack: does its network exist, its volumes, and the state of each of its containers
    (``services``: the keys of the stack's description, for containers made before the label; see
    ``DockerAPI.stack_containers``)."""
    try:
        api.get("/networks/%s" % quote(network))
        network_exists = True
    except DockerError as exc:
        if "HTTP 404" not in str(exc):
            raise
        network_exists = False
    containers = api.stack_containers(stack, services)
    image_ids = {}
    for inspect in containers.values():
        ref = (inspect.get("Config") or {}).get("Image")
        if ref and ref not in image_ids:
            try:
                image_ids[ref] = api.get("/images/%s/json" % quote(ref, safe="/:@")).get("Id")
            except DockerError as exc:
                if "HTTP 404" not in str(exc):
                    raise
                image_ids[ref] = None
    out = {}
    for name, inspect in containers.items():
        out[name[len(stack) + 1:]] = container_facts(inspect, network, image_ids)
    return dict(network_exists=network_exists, volumes=stack_volumes(api, stack), containers=out)
