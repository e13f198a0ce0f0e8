#!/usr/bin/env python3
"""The owlat.selfhost lab: a fleet of Debian hosts on this machine, reached over SSH.

  lab.py engine            make sure a Docker engine runs here
  lab.py images            build (or reuse) the lab images
  lab.py registry          run the private registry (TLS + htpasswd) and push the lab images, then the DNS
  lab.py dns               run the lab DNS (knotd + unbound on 172.29.0.253)
  lab.py dns-publish FILE  serve the records of FILE (playbooks/dns.yml's owlat_dns_json) in the lab zones
  lab.py dns-query NAME [TYPE]   ask the lab DNS
  lab.py nat --public A --to B [--port 25]   a NAT router in front of a host (nat --clear: none)
  lab.py storage           run the external storage: PostgreSQL 17 (TLS, 172.29.0.252) and S3 (radosgw, 172.29.0.251)
  lab.py s3-buckets B... [--empty|--delete]   make (empty, remove) buckets of the lab's S3 user
  lab.py up [-n N]         all of the above but storage, then N hosts and an inventory
  lab.py down [--all]      remove the hosts (with --all: registry, DNS, storage, network and volumes too)
  lab.py down --storage    remove only the storage containers and their volumes
  lab.py status            what runs

Everything built is cached: images are tagged with a hash of their inputs, debootstrap
trees are kept under /var/cache/owlat-lab, so a second run takes seconds.
This is lab tooling for this machine; the collection itself talks to Docker only through
community.docker modules.
"""
from __future__ import annotations

import argparse
import hashlib
import html
import secrets
import json
import os
import pathlib
import re
import shutil
import string
import subprocess
import sys
import time
import urllib.parse

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
STATE = pathlib.Path(os.environ.get("OWLAT_LAB_STATE", HERE / ".state"))
CACHE = pathlib.Path(os.environ.get("OWLAT_LAB_CACHE", "/var/cache/owlat-lab"))
MIRROR = os.environ.get("OWLAT_LAB_MIRROR", "http://deb.debian.org/debian")

NETWORK = "owlat-lab"
SUBNET = "172.29.0.0/24"
REGISTRY_NAME = "owlat-lab-registry"
REGISTRY_HOST = "registry.owlat.lab"
REGISTRY_PORT = 5000
REGISTRY_ADDR = f"{REGISTRY_HOST}:{REGISTRY_PORT}"
REGISTRY_LOCAL = f"127.0.0.1:{REGISTRY_PORT}"  # how this machine pushes
REGISTRY_USER = "lab"
DNS_NAME = "owlat-lab-dns"
DNS_ADDRESS = "172.29.0.253"
DNS_NS = "ns.owlat.test."
# The zones the lab DNS serves unless told more (dns-publish --zone): the lab's names and its network's reverse.
DNS_ZONES = ["owlat.test.", "0.29.172.in-addr.arpa."]
HOST_PREFIX = "owlat-lab-host"
# External storage (lab.py storage): each server has its own CA in STATE/pg, STATE/s3 (not the registry's lab CA).
PG_NAME = "owlat-lab-pg"
PG_ADDRESS = "172.29.0.252"
PG_HOST = "pg.owlat.test"  # in the certificate and a network alias; the lab DNS does not serve it unless published
PG_PORT = 5432
PG_ADMIN = "owlat_admin"
PG_VOLUME = "owlat-lab-pg-data"
S3_NAME = "owlat-lab-s3"
S3_ADDRESS = "172.29.0.251"
S3_HOST = "s3.owlat.test"
S3_PORT = 7480       # plain HTTP
S3_TLS_PORT = 7443   # HTTPS, the certificate from STATE/s3/ca.crt
S3_REGION = "us-east-1"
S3_VOLUME = "owlat-lab-s3-data"
SUITES = {"trixie": "13", "bookworm": "12"}
BASE_PACKAGES = ["ca-certificates", "python3"]
HOST_PACKAGES = BASE_PACKAGES + [
    "systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "sudo", "procps", "curl",
]
# Catalog image keys -> the lab image (lab/images/<name>) or contract double (tests/doubles/<name>).
LAB_SERVICES = {
    "redis": "redis", "caddy": "caddy", "clamav": "clamav",
    "convex_backend": "convex-backend", "convex_dashboard": "convex-dashboard", "web": "web",
    "mta": "mta", "convex_deploy": "convex-deploy",
}

# Tag suffix of the newest release's broken web image (the upgrade scenario's failing host).
BROKEN_SUFFIX = "-broken"

# The flags lab.md measured: systemd as PID 1 and Docker inside, without --privileged.
HOST_RUN_FLAGS = [
    "--cap-add=ALL", "--cap-drop=SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined", "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
]


def log(msg: str) -> None:
    print(f"lab: {msg}", flush=True)


def run(*args: str, check: bool = True, capture: bool = False, stdin=None, quiet: bool = False):
    out = subprocess.PIPE if (capture or quiet) else None
    res = subprocess.run(args, check=False, stdout=out, stderr=out, stdin=stdin, text=True)
    if check and res.returncode != 0:
        detail = (res.stderr or res.stdout or "").strip() if out else ""
        sys.exit(f"lab: command failed ({res.returncode}): {' '.join(args)}\n{detail}")
    return res


def docker(*args: str, **kw):
    return run("docker", *args, **kw)


def exists(kind: str, name: str) -> bool:
    return docker(kind, "inspect", name, check=False, quiet=True).returncode == 0


def digest(*parts: str | bytes | pathlib.Path) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, pathlib.Path):
            for f in sorted(x for x in ([p] if p.is_file() else p.rglob("*")) if x.is_file()):
                h.update(f.name.encode() + f.read_bytes())
        else:
            h.update(p.encode() if isinstance(p, str) else p)
    return h.hexdigest()[:12]


# --- engine -------------------------------------------------------------------------------------

def engine(_args=None) -> None:
    if docker("info", check=False, quiet=True).returncode == 0:
        log("docker engine is running")
        return
    if not shutil.which("dockerd"):
        log("installing docker.io (Debian package)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "docker.io"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    logfile = open("/var/log/owlat-lab-dockerd.log", "ab")  # noqa: SIM115 - handed to the daemon
    log("starting dockerd (no systemd on this machine)")
    subprocess.Popen(["dockerd"], stdout=logfile, stderr=logfile, start_new_session=True)
    for _ in range(120):
        if docker("info", check=False, quiet=True).returncode == 0:
            log("docker engine is up")
            return
        time.sleep(0.5)
    sys.exit("lab: dockerd did not come up; see /var/log/owlat-lab-dockerd.log")


# --- images -------------------------------------------------------------------------------------

def base_image(suite: str, packages: list[str], flavour: str) -> str:
    tag = f"owlat-lab/{flavour}-rootfs:{suite}-{digest(suite, MIRROR, ' '.join(packages))}"
    if exists("image", tag):
        return tag
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"{tag.split(':')[1]}-{flavour}.tar"
    if not tarball.exists():
        root = CACHE / f"{suite}-{flavour}-root"
        shutil.rmtree(root, ignore_errors=True)
        log(f"debootstrap {suite} ({flavour}); about a minute")
        run("debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite, str(root), MIRROR,
            quiet=True)
        # An empty machine-id makes systemd generate one per host at boot.
        (root / "etc/machine-id").write_text("")
        run("rm", "-rf", str(root / "var/cache/apt/archives"), str(root / "var/lib/apt/lists"))
        (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
        run("tar", "-C", str(root), "-cf", str(tarball) + ".tmp", ".")
        os.replace(str(tarball) + ".tmp", tarball)
        shutil.rmtree(root, ignore_errors=True)
    log(f"importing {tag}")
    with open(tarball, "rb") as fh:
        docker("import", "-", tag, stdin=fh, quiet=True)
    return tag


def build(name: str, context: pathlib.Path, base: str, dockerfile: pathlib.Path | None = None,
          args: dict | None = None, inputs: tuple = ()) -> str:
    """Build once per content: the tag is a hash of the base, the build inputs and the build args."""
    args = dict(args or {}, BASE=base)
    tag = f"{name}:{digest(*sorted(f'{k}={v}' for k, v in args.items()), *(inputs or (context,)))}"
    if not exists("image", tag):
        log(f"building {tag}")
        cmd = ["build", "-q", "-t", tag]
        for k, v in args.items():
            cmd += ["--build-arg", f"{k}={v}"]
        if dockerfile:
            cmd += ["-f", str(dockerfile)]
        docker(*cmd, str(context), quiet=True)
    return tag


def alias(tag: str, name: str) -> None:
    """Point a stable name (used by Molecule and the scripts) at the content-hashed tag."""
    docker("tag", tag, name)


def catalog() -> dict:
    """The collection's release catalog: which image references the lab must serve."""
    import yaml  # from the project's virtualenv (PyYAML comes with ansible-core)

    data = yaml.safe_load((ROOT / "roles/stack/vars/main.yml").read_text())
    return data["owlat_stack_release_catalog"]


def mirror_path(ref: str) -> str:
    """ghcr.io/a/b:t -> a/b:t, redis:7 -> library/redis:7: where the collection looks in a mirror."""
    sys.path.insert(0, str(ROOT / ".collections"))
    from ansible_collections.owlat.selfhost.plugins.filter.image_mirror import image_mirror

    return image_mirror(ref, "mirror", keep_digest=False).split("/", 1)[1]


def images(_args=None) -> dict[str, str]:
    engine()
    built = {}
    for suite in SUITES:
        base = base_image(suite, HOST_PACKAGES, "host")
        built[f"host:{suite}"] = build("owlat-lab/host", HERE / "images/host", base)
        alias(built[f"host:{suite}"], f"owlat-lab/host:{suite}")
        # Docker preinstalled: for the scenarios that do not test the Docker install itself.
        built[f"host-docker:{suite}"] = build("owlat-lab/host-docker", HERE / "images/host-docker",
                                              built[f"host:{suite}"])
        alias(built[f"host-docker:{suite}"], f"owlat-lab/host-docker:{suite}")
    base = base_image("trixie", BASE_PACKAGES, "base")
    alias(base, "owlat-lab/base:trixie")
    for name in ("registry", "busybox", "dns"):
        built[name] = build(f"owlat-lab/{name}", HERE / "images" / name, base)
        alias(built[name], f"owlat-lab/{name}:latest")
    log("images ready: " + ", ".join(sorted(built)))
    return built


def service_images(base: str) -> dict[str, str]:
    """Every image reference of every catalog release, built here: real Debian components
    for redis/caddy/clamav, contract doubles (tests/doubles) for the rest. remote path -> local tag.
    The backend double takes everything version-specific (routes, DATABASE_VERSION, limits) from its revision's
    entry in tests/doubles/convex-backend/versions.json, as upstream has it at that commit.
    The newest release's web image also gets a broken variant `<tag>-broken` (its health check fails)
    for the upgrade scenario's rollback."""
    doubles = ROOT / "tests/doubles"
    out = {}
    releases = sorted(catalog().items(), key=lambda kv: [int(x) if x.isdigit() else x for x in kv[0].split(".")])
    for version, release in releases:
        for key, ref in release["images"].items():
            remote = mirror_path(ref)
            if remote in out:
                continue
            name = LAB_SERVICES[key]
            tag_version = remote.rsplit(":", 1)[1]
            args = {"DOUBLE_VERSION": tag_version}
            if (HERE / "images" / name).is_dir():
                out[remote] = build(f"owlat-lab/{name}", HERE / "images" / name, base)
            elif (doubles / name / "Dockerfile").is_file():
                out[remote] = double(name, base, args)
            else:
                log(f"warning: no lab image for {key} ({ref}) of release {version}")
    if releases:
        web = mirror_path(releases[-1][1]["images"]["web"])
        out[f"{web}{BROKEN_SUFFIX}"] = double("web", base, {"DOUBLE_VERSION": web.rsplit(":", 1)[1],
                                                      "DOUBLE_FAIL_HEALTH": "true"})
    return out


def double(name: str, base: str, args: dict) -> str:
    doubles = ROOT / "tests/doubles"
    return build(f"owlat-lab/double-{name}", doubles, base, dockerfile=doubles / name / "Dockerfile",
                 args=args, inputs=(doubles / "common", doubles / name))


# --- registry -----------------------------------------------------------------------------------

def make_ca(d: pathlib.Path, cn: str) -> None:
    """d/ca.crt and d/ca.key, made once. Key usage and constraints as a real CA has them: Python 3.13 verifies
    strictly (VERIFY_X509_STRICT) and refuses a CA certificate without a keyUsage extension."""
    if not (d / "ca.crt").exists():
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
            "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-addext", "subjectKeyIdentifier=hash",
            "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"), quiet=True)


def make_server_cert(d: pathlib.Path, name: str, cn: str, sans: list[str]) -> bool:
    """d/<name>.crt and d/<name>.key for a TLS server (cn, sans), signed by d's CA; made once (True: just made)."""
    if (d / f"{name}.crt").exists():
        return False
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={','.join(sans)}\n"
                   "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                   "basicConstraints=CA:FALSE\nauthorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
        "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"), quiet=True)
    run("openssl", "x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"),
        "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "3650", "-extfile", str(ext),
        "-out", str(d / f"{name}.crt"), quiet=True)
    return True


def lab_secrets() -> dict:
    """Lab CA, registry certificate, registry password and SSH key; made once, kept in STATE."""
    STATE.mkdir(parents=True, exist_ok=True)
    os.chmod(STATE, 0o700)
    pki = STATE / "pki"
    pki.mkdir(exist_ok=True)
    make_ca(pki, "owlat lab CA")
    if make_server_cert(pki, "registry", REGISTRY_HOST, [f"DNS:{REGISTRY_HOST}", "DNS:localhost", "IP:127.0.0.1"]):
        os.chmod(pki / "registry.key", 0o644)  # read by the registry process in its container
    pw = STATE / "registry-password"
    if not pw.exists():
        pw.write_text(hashlib.sha256(os.urandom(32)).hexdigest()[:32])
        os.chmod(pw, 0o600)
    key = STATE / "id_ed25519"
    if not key.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "owlat-lab", "-f", str(key))
    return {"ca": pki / "ca.crt", "password": pw.read_text().strip(), "key": key}


def network() -> None:
    if not exists("network", NETWORK):
        docker("network", "create", "--subnet", SUBNET, NETWORK, quiet=True)


def registry(_args=None, built: dict | None = None) -> None:
    built = built or images()
    sec = lab_secrets()
    network()
    auth = STATE / "auth"
    auth.mkdir(exist_ok=True)
    htpasswd = auth / "htpasswd"
    if not htpasswd.exists():
        line = docker("run", "--rm", "--entrypoint", "htpasswd", built["registry"], "-Bbn", REGISTRY_USER,
                      sec["password"], capture=True).stdout.strip()
        htpasswd.write_text(line + "\n")
    if exists("container", REGISTRY_NAME) and not current(REGISTRY_NAME, built["registry"]):
        docker("rm", "-f", REGISTRY_NAME, quiet=True)
    if not exists("container", REGISTRY_NAME):
        log(f"starting the lab registry {REGISTRY_ADDR}")
        docker("run", "-d", "--name", REGISTRY_NAME, "--restart", "unless-stopped", "--label", f"owlat-lab.state={STATE}",
               "--network", NETWORK, "--network-alias", REGISTRY_HOST,
               "-p", f"{REGISTRY_LOCAL}:{REGISTRY_PORT}",
               "-v", f"{STATE / 'pki'}:/certs:ro", "-v", f"{auth}:/auth:ro",
               "-v", "owlat-lab-registry-data:/var/lib/docker-registry", built["registry"], quiet=True)
    # docker-proxy accepts TCP before the registry serves: wait for a real answer (401 without login).
    for _ in range(120):
        res = run("curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", f"https://{REGISTRY_LOCAL}/v2/",
                  check=False, capture=True)
        if res.stdout.strip() == "401":
            break
        time.sleep(0.5)
    else:
        sys.exit(f"lab: the registry does not answer; see `docker logs {REGISTRY_NAME}`")
    docker("login", "-u", REGISTRY_USER, "--password-stdin", REGISTRY_LOCAL,
           stdin=open(STATE / "registry-password"), quiet=True)  # noqa: SIM115
    pushed_file = STATE / "pushed.json"
    pushed = json.loads(pushed_file.read_text()) if pushed_file.exists() else {}
    wanted = {"lab/busybox:1": built["busybox"], **service_images(docker_base())}
    for remote, src in wanted.items():
        if pushed.get(remote) == src and registry_has(remote, sec["password"]):
            continue
        log(f"pushing {remote}")
        docker("tag", src, f"{REGISTRY_LOCAL}/{remote}")
        docker("push", f"{REGISTRY_LOCAL}/{remote}", quiet=True)
        pushed[remote] = src
    pushed_file.write_text(json.dumps(pushed, indent=1))
    dns(built=built)


def docker_base() -> str:
    return base_image("trixie", BASE_PACKAGES, "base")


def registry_has(ref: str, password: str) -> bool:
    repo, tag = ref.rsplit(":", 1)
    res = run("curl", "-sf", "-o", "/dev/null", "--cacert", str(STATE / "pki/ca.crt"),
              "--resolve", f"{REGISTRY_HOST}:{REGISTRY_PORT}:127.0.0.1", "-u", f"{REGISTRY_USER}:{password}",
              "-H", "Accept: application/vnd.docker.distribution.manifest.v2+json",
              f"https://{REGISTRY_ADDR}/v2/{repo}/manifests/{tag}", check=False, quiet=True)
    return res.returncode == 0


# --- dns ----------------------------------------------------------------------------------------
# The lab DNS (lab/images/dns): knotd serves the lab zones from files in STATE/dns (mounted on /lab in the container),
# unbound answers on DNS_ADDRESS:53 (stub zones to knotd, the rest forwarded to Docker's embedded DNS, nothing cached).
# STATE/dns: zones/<zone>.zone, knot-zones.conf and unbound-zones.conf (the zone list), zones.json (zone list and
# last serial), nat.json/nat.nft/nat.addrs (lab.py nat).

DNS_TYPES = ["A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "TXT"]  # what the collection's resolver reads


def dns_fqdn(name: str) -> str:
    return name.strip().rstrip(".").lower() + "."


def dns_dir() -> pathlib.Path:
    return STATE / "dns"


def dns_state() -> dict:
    f = dns_dir() / "zones.json"
    state = json.loads(f.read_text()) if f.exists() else {}
    return {"zones": state.get("zones") or list(DNS_ZONES), "serial": state.get("serial", 0)}


def write_atomic(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def dns_zone_text(zone: str, serial: int, lines: list[str]) -> str:
    head = ["; Written by lab/lab.py dns-publish; the next publish replaces it.", f"$ORIGIN {zone}", "$TTL 3600",
            # Negative answers (SOA minimum) are not to be kept either.
            f"@ 3600 IN SOA {DNS_NS} hostmaster.owlat.test. {serial} 3600 600 86400 0",
            f"@ 3600 IN NS {DNS_NS}"]
    if dns_zone_of(DNS_NS, [zone]):
        head.append(f"{DNS_NS} 3600 IN A {DNS_ADDRESS}")
    return "\n".join(head + lines) + "\n"


def dns_zone_of(name: str, zones: list[str]) -> str | None:
    """The served zone a name belongs in: the longest zone that is the name or a suffix of it."""
    name = dns_fqdn(name)
    return max((z for z in zones if name == z or name.endswith("." + z)), key=len, default=None)


def dns_rdata(rtype: str, value) -> str:
    """A record's value in zone-file syntax. TXT: one quoted, escaped character-string per 255 bytes."""
    value = str(value).strip()
    if rtype == "TXT":
        data = value.encode()
        chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
        esc = lambda b: "\\" + chr(b) if b in (0x22, 0x5C) else chr(b) if 0x20 <= b < 0x7F else f"\\{b:03d}"  # noqa: E731
        return " ".join('"' + "".join(esc(b) for b in chunk) + '"' for chunk in chunks)
    if rtype in ("PTR", "CNAME", "NS", "DNAME", "MX", "SRV"):  # the target name is absolute, never relative to $ORIGIN
        *rest, target = value.split()
        return " ".join(rest + [target if target.endswith(".") else target + "."])
    return value


def dns_write_config(zones: list[str]) -> bool:
    """The zone list for knotd and unbound; True when it changed."""
    d = dns_dir()
    knot = "zone:\n" + "".join(f"  - domain: {z}\n" for z in zones)
    unbound = "server:\n" + "".join(f'    local-zone: "{z}" transparent\n' for z in zones) + "".join(
        f'stub-zone:\n    name: "{z}"\n    stub-addr: 127.0.0.1@5300\n    stub-no-cache: yes\n' for z in zones)
    changed = False
    for name, text in (("knot-zones.conf", knot), ("unbound-zones.conf", unbound)):
        f = d / name
        if not f.exists() or f.read_text() != text:
            write_atomic(f, text)
            changed = True
    return changed


def dns_prepare() -> dict:
    """STATE/dns as the container needs it: the zone list, and a zone file (SOA, NS only) for each zone without one."""
    d = dns_dir()
    (d / "zones").mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o755)
    state = dns_state()
    missing = [z for z in state["zones"] if not (d / "zones" / f"{z.rstrip('.')}.zone").exists()]
    if missing:
        state["serial"] = max(int(time.time()), state["serial"] + 1)
        for z in missing:
            write_atomic(d / "zones" / f"{z.rstrip('.')}.zone", dns_zone_text(z, state["serial"], []))
    dns_write_config(state["zones"])
    write_atomic(d / "zones.json", json.dumps(state, indent=1) + "\n")
    return state


def dns_running() -> bool:
    res = docker("inspect", "-f", "{{.State.Running}}", DNS_NAME, check=False, capture=True)
    return res.returncode == 0 and res.stdout.strip() == "true"


def dns(_args=None, built: dict | None = None) -> None:
    built = built or images()
    network()
    dns_prepare()
    if exists("container", DNS_NAME) and not current(DNS_NAME, built["dns"]):
        docker("rm", "-f", DNS_NAME, quiet=True)
    if not exists("container", DNS_NAME):
        log(f"starting the lab DNS {DNS_ADDRESS} (knotd + unbound)")
        docker("run", "-d", "--name", DNS_NAME, "--hostname", "ns", "--restart", "unless-stopped",
               "--label", f"owlat-lab.state={STATE}", "--network", NETWORK, "--ip", DNS_ADDRESS,
               # nft and the public addresses of `lab.py nat`; forwarding for its DNAT.
               "--cap-add", "NET_ADMIN", "--sysctl", "net.ipv4.ip_forward=1",
               "-v", f"{dns_dir()}:/lab:ro", built["dns"], quiet=True)
    deadline = time.time() + 60
    while True:
        try:
            if dns_query(DNS_NS, "A", timeout=0.5)[1] == [DNS_ADDRESS]:
                break
        except OSError:
            pass
        if time.time() > deadline:
            sys.exit(f"lab: the lab DNS does not answer; see `docker logs {DNS_NAME}`")
        time.sleep(0.2)
    log(f"lab DNS answers on {DNS_ADDRESS}:53")


def dns_publish(args) -> None:
    """Serve exactly the records of a playbooks/dns.yml JSON file (besides SOA, NS, ns A) and return once served."""
    stacks = json.loads(pathlib.Path(args.file).read_text())
    zones = list(dict.fromkeys(dns_fqdn(z) for z in DNS_ZONES + (args.zone or [])))
    lines: dict[str, list[str]] = {z: [] for z in zones}
    for stack in stacks:
        for rec in stack.get("records") or []:
            if rec.get("value") is None:
                continue  # the app gives it later (DKIM)
            name, rtype = dns_fqdn(rec["name"]), rec["type"].upper()
            zone = dns_zone_of(name, zones)
            where = f"{stack.get('stack')}: {name} {rtype}"
            if zone is None:
                print(f"lab: {where}: in none of the served zones ({', '.join(zones)}); skipped", file=sys.stderr)
                continue
            if rtype == "SOA" or (rtype == "NS" and name == zone) or name == DNS_NS:
                print(f"lab: {where}: the lab DNS keeps its own; skipped", file=sys.stderr)
                continue
            line = f"{name} {int(rec.get('ttl') or 3600)} IN {rtype} {dns_rdata(rtype, rec['value'])}"
            if line not in lines[zone]:
                lines[zone].append(line)
    if not dns_running():
        dns()
    d = dns_dir()
    state = dns_prepare()
    gone = [z for z in state["zones"] if z not in zones]
    serial = max(int(time.time()), state["serial"] + 1)
    files = [d / "zones" / f"{z.rstrip('.')}.zone" for z in zones] + [
        d / f for f in ("knot-zones.conf", "unbound-zones.conf", "zones.json")]
    before = {f: f.read_text() if f.exists() else None for f in files}
    for z in zones:
        write_atomic(d / "zones" / f"{z.rstrip('.')}.zone", dns_zone_text(z, serial, lines[z]))
    changed = dns_write_config(zones)
    write_atomic(d / "zones.json", json.dumps({"zones": zones, "serial": serial}, indent=1) + "\n")
    reload = ["exec", DNS_NAME, "lab-dns-reload"] + (["--config"] if changed else [])
    res = docker(*reload, *(x for z in zones for x in (z, str(serial))), check=False, capture=True)
    if res.returncode != 0:
        # The reload checks every file before it touches knotd: put the served files back.
        for f, text in before.items():
            if text is None:
                f.unlink(missing_ok=True)
            else:
                write_atomic(f, text)
        sys.exit(f"lab: publishing failed, nothing changed:\n{(res.stderr + res.stdout).strip()}")
    for z in gone:
        (d / "zones" / f"{z.rstrip('.')}.zone").unlink(missing_ok=True)
        print(f"{z}\tno longer served")
    for z in zones:
        print(f"{z}\t{len(lines[z])} record(s)\tserial {serial}")


def dns_query(name: str, rtype: str = "A", server: str = DNS_ADDRESS, port: int = 53,
              timeout: float = 2.0) -> tuple[str, list[str]]:
    """One recursive query with the collection's own stub resolver (what owlat_mail_check asks with): the rcode and
    the answers of that type, as text."""
    sys.path.insert(0, str(ROOT / ".collections"))
    from ansible_collections.owlat.selfhost.plugins.module_utils._dnswire import Resolver

    answer = Resolver([f"{server}:{port}"], timeout=timeout).query(name, rtype)
    return answer.rcode, list(answer.records)


def dns_query_cmd(args) -> None:
    rcode, answers = dns_query(args.name, args.type, server=args.server, port=args.port)
    for a in answers:
        print(a)
    if rcode != "NOERROR" or not answers:
        sys.exit(f"lab: {args.name} {args.type.upper()}: {rcode}{', no answer' if rcode == 'NOERROR' else ''}")


def nat(args) -> None:
    """The lab's NAT router in front of a host, in the DNS container: its eth0 also holds each public address, and
    TCP to a public address on the given ports is DNATed to the private one, masqueraded so the replies come back
    the same way (the private host sees the connections come from DNS_ADDRESS). Kept in STATE/dns until cleared."""
    import ipaddress

    d = dns_dir()
    state_file = d / "nat.json"
    mappings = json.loads(state_file.read_text()) if state_file.exists() else {}
    net = ipaddress.ip_network(SUBNET)
    if args.clear:
        if args.public:
            mappings.pop(args.public, None)
        else:
            mappings = {}
    else:
        if not (args.public and args.to):
            sys.exit("lab: nat needs --public ADDR --to ADDR (or --clear)")
        for a in (args.public, args.to):
            if ipaddress.ip_address(a) not in net:
                sys.exit(f"lab: {a} is not on the lab network {SUBNET}")
        fmt = "{{range .Containers}}{{.IPv4Address}} {{end}}{{range .IPAM.Config}}{{.Gateway}}{{end}}"
        used = {a.split("/")[0] for a in docker("network", "inspect", "-f", fmt, NETWORK, capture=True).stdout.split()}
        if args.public in used or args.public == args.to:
            sys.exit(f"lab: {args.public} is in use on {NETWORK}; pick a free address as the public one")
        mappings[args.public] = {"to": args.to, "ports": sorted(set(args.port or [25]))}
    if not dns_running():
        dns()
    prefix = net.prefixlen
    if mappings:
        pre = "".join(f"        ip daddr {pub} tcp dport {{ {', '.join(map(str, m['ports']))} }} dnat to {m['to']}\n"
                      for pub, m in mappings.items())
        post = "".join(f"        ct status dnat ct original ip daddr {pub} masquerade\n" for pub in mappings)
        write_atomic(d / "nat.nft", "# Written by lab/lab.py nat.\ntable ip owlatnat\ndelete table ip owlatnat\n"
                     "table ip owlatnat {\n"
                     "    chain prerouting {\n        type nat hook prerouting priority dstnat; policy accept;\n"
                     f"{pre}    }}\n"
                     "    chain postrouting {\n        type nat hook postrouting priority srcnat; policy accept;\n"
                     f"{post}    }}\n}}\n")
        write_atomic(d / "nat.addrs", "".join(f"{pub}/{prefix}\n" for pub in mappings))
        write_atomic(state_file, json.dumps(mappings, indent=1) + "\n")
    else:
        for f in ("nat.nft", "nat.addrs", "nat.json"):
            (d / f).unlink(missing_ok=True)
    docker("exec", DNS_NAME, "lab-nat-apply")
    for pub, m in mappings.items():
        print(f"{pub} tcp/{','.join(map(str, m['ports']))} -> {m['to']}")
    if not mappings:
        print("no NAT")


# --- storage ------------------------------------------------------------------------------------
# The external storage of the Convex backend (docs/upstream-external-storage.md §7): owlat-lab-pg (lab/images/postgres)
# and owlat-lab-s3 (lab/images/s3), each at a fixed address on the lab network, its data in a named volume that
# outlives the container. Only `storage` builds and starts them: the other targets do not pay for them.
# STATE/pg: ca.crt, ca.key, server.crt, server.key, admin-password. STATE/s3: ca.crt, ca.key, server.crt, server.key,
# access-key, secret-key. Made once; the containers get the server's files read-only on /lab (never a CA key).

def secret_file(path: pathlib.Path, make) -> str:
    """A secret kept in STATE (0600), made once."""
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(make() + "\n")
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return path.read_text().strip()


def server_pki(d: pathlib.Path, what: str, cn: str, sans: list[str]) -> None:
    """A CA of its own and a server certificate (cn, sans) signed by it in d; made once."""
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    if not (d / "ca.crt").exists():
        (d / "server.crt").unlink(missing_ok=True)  # a new CA: the old server certificate no longer verifies
    make_ca(d, f"owlat lab {what} CA")
    make_server_cert(d, "server", cn, sans)
    for key in ("ca.key", "server.key"):
        os.chmod(d / key, 0o600)


def storage_secrets() -> dict:
    STATE.mkdir(parents=True, exist_ok=True)
    os.chmod(STATE, 0o700)
    pg, s3 = STATE / "pg", STATE / "s3"
    server_pki(pg, "PostgreSQL", PG_HOST, [f"DNS:{PG_HOST}", f"IP:{PG_ADDRESS}"])
    server_pki(s3, "S3", S3_HOST, [f"DNS:{S3_HOST}", f"IP:{S3_ADDRESS}"])
    upper, alnum = string.ascii_uppercase + string.digits, string.ascii_letters + string.digits
    return {
        "pg_dir": pg, "pg_password": secret_file(pg / "admin-password", lambda: secrets.token_hex(16)),
        "s3_dir": s3,
        "s3_access_key": secret_file(s3 / "access-key", lambda: "".join(secrets.choice(upper) for _ in range(20))),
        "s3_secret_key": secret_file(s3 / "secret-key", lambda: "".join(secrets.choice(alnum) for _ in range(40))),
    }


def storage_container(name: str, image: str, address: str, host: str, volume: str, data: str,
                      files: dict[str, pathlib.Path]) -> None:
    if exists("container", name) and not current(name, image):
        docker("rm", "-f", name, quiet=True)  # the named volume stays
    if exists("container", name):
        return
    log(f"starting {name} ({address}, {host})")
    mounts = [x for dst, src in files.items() for x in ("-v", f"{src}:/lab/{dst}:ro")]
    docker("run", "-d", "--name", name, "--hostname", host.split(".")[0], "--restart", "unless-stopped",
           "--label", "owlat-lab=storage", "--label", f"owlat-lab.state={STATE}",
           "--network", NETWORK, "--ip", address, "--network-alias", host,
           "-v", f"{volume}:{data}", *mounts, image, quiet=True)


def pg_query(sql: str, sslmode: str = "verify-full", host: str = PG_ADDRESS, check: bool = True):
    """psql in the PostgreSQL container, over TCP to the server's own address, as owlat_admin, with the CA."""
    conninfo = (f"host={host} hostaddr={PG_ADDRESS} port={PG_PORT} dbname=postgres user={PG_ADMIN} "
                f"sslmode={sslmode} sslrootcert=/lab/ca.crt connect_timeout=2")
    return docker("exec", PG_NAME, "sh", "-c", 'PGPASSWORD=$(cat /lab/admin-password) exec psql -XAtq -v ON_ERROR_STOP=1 '
                  '"$0" -c "$1"', conninfo, sql, check=check, capture=True)


def s3_request(method: str, path: str, body: bytes = b"", tls: bool = False, raw: bool = False) -> tuple[int, str | bytes]:
    """One SigV4-signed request (path style) as the lab's S3 user, with curl from this machine: (HTTP status, body as
    text, or as bytes with raw)."""
    access = (STATE / "s3/access-key").read_text().strip()
    secret = (STATE / "s3/secret-key").read_text().strip()
    base = f"https://{S3_ADDRESS}:{S3_TLS_PORT}" if tls else f"http://{S3_ADDRESS}:{S3_PORT}"
    cmd = ["curl", "-sS", "--max-time", "5", "-K", "-", "--aws-sigv4", f"aws:amz:{S3_REGION}:s3", "-X", method,
           # radosgw (as S3) wants the payload's hash as a signed header.
           "-H", f"x-amz-content-sha256: {hashlib.sha256(body).hexdigest()}", "-o", "-", "-w", "\n%{http_code}"]
    if tls:
        cmd += ["--cacert", str(STATE / "s3/ca.crt")]
    body_file = None
    if body:
        body_file = STATE / "s3/.body"
        body_file.write_bytes(body)
        cmd += ["-H", "Content-Type: application/octet-stream", "--data-binary", f"@{body_file}"]
    # The keys go through curl's config on stdin, not its command line.
    res = subprocess.run(cmd + [base + path], input=f'user = "{access}:{secret}"\n'.encode(), capture_output=True,
                         check=False)
    if body_file:
        body_file.unlink(missing_ok=True)
    out, _, code = res.stdout.rpartition(b"\n")
    if not out and res.returncode != 0:
        out = res.stderr.strip()
    return (int(code) if code.isdigit() else 0), (out if raw else out.decode(errors="replace"))


def storage_ready(timeout: float = 120) -> None:
    """(a) a TLS connection that verifies with the CA, as owlat_admin; (b) the S3 user lists, makes and removes a
    bucket, over HTTP and HTTPS."""
    deadline = time.time() + timeout
    while True:
        res = pg_query("SELECT 1, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", check=False)
        if res.returncode == 0 and res.stdout.strip() == "1|t":
            break
        if time.time() > deadline:
            sys.exit(f"lab: PostgreSQL does not answer over TLS ({(res.stderr or res.stdout).strip()}); "
                     f"see `docker logs {PG_NAME}`")
        time.sleep(0.3)
    log(f"PostgreSQL answers over TLS (verify-full) on {PG_ADDRESS}:{PG_PORT}")
    while True:
        code, out = s3_request("GET", "/")
        if code == 200:
            break
        if time.time() > deadline:
            tail = docker("logs", "--tail", "15", S3_NAME, check=False, capture=True)
            sys.exit(f"lab: S3 does not answer ({code}: {out}); the last lines of `docker logs {S3_NAME}`:\n"
                     f"{tail.stdout}{tail.stderr}")
        time.sleep(0.3)
    bucket = "owlat-lab-ready"
    steps = [("PUT", f"/{bucket}", True, (200,)), ("GET", "/", True, (200,)), ("DELETE", f"/{bucket}", False, (204,))]
    for method, path, tls, ok in steps:
        code, out = s3_request(method, path, tls=tls)
        if code not in ok or (method == "GET" and f"<Name>{bucket}</Name>" not in out):
            sys.exit(f"lab: S3 {method} {path}{' (TLS)' if tls else ''}: {code} {out}; see `docker logs {S3_NAME}`")
    log(f"S3 answers on {S3_ADDRESS}:{S3_PORT} (HTTP) and :{S3_TLS_PORT} (HTTPS): a bucket made, listed, removed")


def storage(_args=None, built: dict | None = None) -> dict:
    """Build (or reuse) the storage images, start the containers unless current, wait until both serve."""
    started = time.time()
    engine()
    built = dict(built or {})
    for name in ("postgres", "s3"):
        if name not in built:
            built[name] = build(f"owlat-lab/{name}", HERE / "images" / name, docker_base())
            alias(built[name], f"owlat-lab/{name}:latest")
    sec = storage_secrets()
    network()
    pg, s3 = sec["pg_dir"], sec["s3_dir"]
    storage_container(PG_NAME, built["postgres"], PG_ADDRESS, PG_HOST, PG_VOLUME, "/var/lib/postgresql/data",
                      {f: pg / f for f in ("ca.crt", "server.crt", "server.key", "admin-password")})
    storage_container(S3_NAME, built["s3"], S3_ADDRESS, S3_HOST, S3_VOLUME, "/var/lib/ceph/radosgw",
                      {f: s3 / f for f in ("server.crt", "server.key", "access-key", "secret-key")})
    storage_ready()
    facts = {
        "postgres_url": f"postgresql://{PG_ADMIN}@{PG_ADDRESS}:{PG_PORT}", "postgres_address": PG_ADDRESS,
        "postgres_ca": str(pg / "ca.crt"), "postgres_password_file": str(pg / "admin-password"),
        "s3_endpoint": f"http://{S3_ADDRESS}:{S3_PORT}", "s3_tls_endpoint": f"https://{S3_ADDRESS}:{S3_TLS_PORT}",
        "s3_ca": str(s3 / "ca.crt"), "s3_region": S3_REGION,
        "s3_access_key_file": str(s3 / "access-key"), "s3_secret_key_file": str(s3 / "secret-key"),
    }
    log(f"storage ready in {time.time() - started:.1f} s")
    # The certificates name the addresses and the hosts' names; the names resolve through Docker's DNS on the lab
    # network (aliases), not through the lab DNS unless published there.
    print(f"postgres  {facts['postgres_url']} (no database in the URL; certificate for {PG_ADDRESS}, {PG_HOST})\n"
          f"          TLS: sslmode=verify-full sslrootcert={facts['postgres_ca']}; plain TCP is accepted too\n"
          f"          password of {PG_ADMIN} (superuser): {facts['postgres_password_file']}\n"
          f"s3        {facts['s3_endpoint']}, {facts['s3_tls_endpoint']} (CA {facts['s3_ca']}, "
          f"certificate for {S3_ADDRESS}, {S3_HOST})\n"
          f"          region {S3_REGION}, path style; keys: {facts['s3_access_key_file']}, "
          f"{facts['s3_secret_key_file']}")
    return facts


def s3_buckets(args) -> None:
    """Make (or, with --delete, empty and remove) buckets of the lab's S3 user; --empty removes only their objects."""
    for bucket in args.bucket:
        if args.delete or args.empty:
            while True:  # radosgw lists up to 1000 keys per answer
                code, out = s3_request("GET", f"/{bucket}")
                if code == 404:
                    break
                keys = re.findall(r"<Key>([^<]+)</Key>", out)
                if code != 200 or not keys:
                    break
                for key in keys:
                    s3_request("DELETE", f"/{bucket}/{urllib.parse.quote(html.unescape(key))}")
            if args.delete:
                code, out = s3_request("DELETE", f"/{bucket}")
                if code not in (204, 404):
                    sys.exit(f"lab: S3 DELETE /{bucket}: {code} {out}")
            log(f"bucket {bucket} {'removed' if args.delete else 'emptied'}")
        else:
            code, out = s3_request("PUT", f"/{bucket}")
            if code not in (200, 409):
                sys.exit(f"lab: S3 PUT /{bucket}: {code} {out}")
            log(f"bucket {bucket} ready")


def storage_down() -> None:
    for name in (PG_NAME, S3_NAME):
        if exists("container", name):
            docker("rm", "-f", name, quiet=True)
            log(f"removed {name}")
    for volume in (PG_VOLUME, S3_VOLUME):
        docker("volume", "rm", "-f", volume, quiet=True, check=False)


# --- hosts --------------------------------------------------------------------------------------

def host_ip(i: int) -> str:
    return f"172.29.0.{10 + i}"


def up(args) -> None:
    built = images()
    registry(built=built)
    sec = lab_secrets()
    suites = args.suites.split(",")
    wanted = {f"{HOST_PREFIX}{i}": (i, suites[(i - 1) % len(suites)]) for i in range(1, args.n + 1)}
    for name, (i, suite) in wanted.items():
        image = built[f"host:{suite}"]
        if exists("container", name):
            if current(name, image):
                continue
            docker("rm", "-f", "-v", name, quiet=True)
        log(f"starting {name} (Debian {SUITES[suite]}, {host_ip(i)})")
        docker("run", "-d", "--name", name, "--hostname", name, "--network", NETWORK, "--ip", host_ip(i),
               "--label", "owlat-lab=host", "--label", f"owlat-lab.state={STATE}", *HOST_RUN_FLAGS,
               "-v", f"{sec['key']}.pub:/root/.ssh/authorized_keys:ro",
               "-v", "/var/lib/docker", image, quiet=True)
    if not args.keep_extra:
        for name in lab_hosts():
            if name not in wanted:
                log(f"removing {name}")
                docker("rm", "-f", "-v", name, quiet=True)
    write_inventory(wanted, sec)
    wait_ssh(wanted, sec)
    log(f"{len(wanted)} host(s) up; inventory: {STATE / 'inventory.yml'}")


def current(name: str, image: str) -> bool:
    """Is this container running the wanted image, with this checkout's lab state (keys, CA)?"""
    fmt = '{{.Config.Image}} {{.State.Running}} {{index .Config.Labels "owlat-lab.state"}}'
    return docker("inspect", "-f", fmt, name, capture=True).stdout.split() == [image, "true", str(STATE)]


def lab_hosts() -> list[str]:
    out = docker("ps", "-a", "--filter", "label=owlat-lab=host", "--format", "{{.Names}}", capture=True).stdout
    return sorted(out.split())


def write_inventory(hosts: dict, sec: dict) -> None:
    lines = [
        "# Written by lab/lab.py: the lab fleet. Do not edit; run `lab/lab.py up` again.",
        "all:",
        "  vars:",
        "    ansible_user: root",
        f"    ansible_ssh_private_key_file: {sec['key']}",
        "    ansible_ssh_common_args: >-",
        "      -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
        "    ansible_python_interpreter: /usr/bin/python3",
        f"    owlat_lab_registry: {REGISTRY_ADDR}",
        "    # Hosts trust the lab CA and log in, as production hosts do with a private mirror.",
        "    owlat_docker_registries:",
        "      - registry: \"{{ owlat_lab_registry }}\"",
        f"        username: {REGISTRY_USER}",
        f"        password: \"{{{{ lookup('ansible.builtin.file', '{STATE / 'registry-password'}') }}}}\"",
        f"        ca_cert: \"{{{{ lookup('ansible.builtin.file', '{sec['ca']}') }}}}\"",
        "    # The stack pulls every image through the lab registry (a mirror of the upstream names);",
        "    # the lab's doubles are not the upstream builds, so upstream digests cannot apply.",
        f"    owlat_stack_registry_mirror: {REGISTRY_ADDR}",
        "    owlat_stack_registry_mirror_keep_digests: false",
        "    owlat_stack_app_hostname: app.{{ inventory_hostname }}.owlat.test",
        "    owlat_stack_api_hostname: api.{{ inventory_hostname }}.owlat.test",
        "    owlat_stack_actions_hostname: actions.{{ inventory_hostname }}.owlat.test",
        "    owlat_stack_email_domain: \"{{ inventory_hostname }}.owlat.test\"",
        "    owlat_proxy_tls: internal",
        "  children:",
        "    owlat_hosts:",
        "      hosts:",
    ]
    for name, (i, _suite) in hosts.items():
        lines += [f"        {name}:", f"          ansible_host: {host_ip(i)}"]
    (STATE / "inventory.yml").write_text("\n".join(lines) + "\n")


def wait_ssh(hosts: dict, sec: dict) -> None:
    deadline = time.time() + 90
    pending = dict(hosts)
    while pending and time.time() < deadline:
        for name, (i, _s) in list(pending.items()):
            res = run("ssh", "-i", str(sec["key"]), "-o", "BatchMode=yes", "-o", "ConnectTimeout=2",
                      "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                      f"root@{host_ip(i)}", "systemctl is-system-running --wait >/dev/null; true",
                      check=False, quiet=True)
            if res.returncode == 0:
                del pending[name]
        if pending:
            time.sleep(1)
    if pending:
        sys.exit(f"lab: no SSH on {', '.join(pending)} after 90 s; see `docker logs <host>`")


def down(args) -> None:
    if args.storage and not args.all:
        storage_down()
        log("storage containers and their volumes removed")
        return
    for name in lab_hosts():
        docker("rm", "-f", "-v", name, quiet=True)
        log(f"removed {name}")
    if args.all:
        storage_down()
        for name in (REGISTRY_NAME, DNS_NAME):
            if exists("container", name):
                docker("rm", "-f", name, quiet=True)
        docker("volume", "rm", "-f", "owlat-lab-registry-data", quiet=True, check=False)
        if exists("network", NETWORK):
            docker("network", "rm", NETWORK, quiet=True, check=False)
        (STATE / "pushed.json").unlink(missing_ok=True)
        shutil.rmtree(dns_dir(), ignore_errors=True)
        log("registry, DNS, storage, network and volumes removed (images, caches and STATE kept)")


def status(_args=None) -> None:
    # Filters of different keys are ANDed by `docker ps`, those of one key ORed: one name filter per container.
    names = [REGISTRY_NAME, DNS_NAME, PG_NAME, S3_NAME] + lab_hosts()
    docker("ps", "-a", *(x for n in names for x in ("--filter", f"name=^{n}$")),
           "--format", "table {{.Names}}\t{{.Image}}\t{{.Status}}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("engine").set_defaults(fn=engine)
    sub.add_parser("images").set_defaults(fn=images)
    sub.add_parser("registry").set_defaults(fn=registry)
    sub.add_parser("dns", help="run the lab DNS").set_defaults(fn=dns)
    sub.add_parser("storage", help="run the external storage (PostgreSQL with TLS, S3)").set_defaults(fn=storage)
    sb = sub.add_parser("s3-buckets", help="make, empty or remove buckets of the lab's S3 user")
    sb.add_argument("bucket", nargs="+")
    sb.add_argument("--empty", action="store_true", help="remove every object, keep the bucket")
    sb.add_argument("--delete", action="store_true", help="remove every object and the bucket")
    sb.set_defaults(fn=s3_buckets)
    dp = sub.add_parser("dns-publish", help="serve the records of a playbooks/dns.yml JSON file")
    dp.add_argument("file", help="JSON as playbooks/dns.yml writes it (-e owlat_dns_json=FILE)")
    dp.add_argument("--zone", action="append", metavar="ZONE",
                    help=f"serve this zone too (besides {' and '.join(DNS_ZONES)}); repeatable")
    dp.set_defaults(fn=dns_publish)
    dq = sub.add_parser("dns-query", help="ask the lab DNS (or --server)")
    dq.add_argument("name")
    dq.add_argument("type", nargs="?", default="A", type=str.upper, choices=DNS_TYPES)
    dq.add_argument("--server", default=DNS_ADDRESS)
    dq.add_argument("--port", type=int, default=53)
    dq.set_defaults(fn=dns_query_cmd)
    n = sub.add_parser("nat", help="a NAT router in front of a host (in the DNS container)")
    n.add_argument("--public", metavar="ADDR", help="the public address (a free one on the lab network)")
    n.add_argument("--to", metavar="ADDR", help="the private address (the host's)")
    n.add_argument("--port", type=int, action="append", help="TCP port forwarded (repeatable; default 25)")
    n.add_argument("--clear", action="store_true", help="remove the NAT (of --public only, if given)")
    n.set_defaults(fn=nat)
    u = sub.add_parser("up")
    u.add_argument("-n", type=int, default=int(os.environ.get("LAB_HOSTS", "3")), help="number of hosts")
    u.add_argument("--suites", default=os.environ.get("LAB_SUITES", "trixie"),
                   help="comma-separated Debian suites, assigned round-robin (trixie,bookworm)")
    u.add_argument("--keep-extra", action="store_true", help="keep hosts beyond N")
    u.set_defaults(fn=up)
    d = sub.add_parser("down")
    d.add_argument("--all", action="store_true")
    d.add_argument("--storage", action="store_true", help="only the storage containers and their volumes")
    d.set_defaults(fn=down)
    sub.add_parser("status").set_defaults(fn=status)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
