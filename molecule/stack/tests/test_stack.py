"""Verify a deployed stack as its users would: from outside the host over HTTPS and SMTP, and the
operator's promises on the host (secrets, hardening, published ports)."""

import json
import os
import pathlib
import re
import socket
import ssl
import subprocess
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "shared"))
from converge_run import run_converge  # noqa: E402
from lab_http import https_get  # noqa: E402

STACK = "owlat"
CONF = f"/etc/owlat/{STACK}"
CA = f"/var/lib/docker/volumes/{STACK}-caddy-data/_data/caddy/pki/authorities/local/root.crt"


@pytest.fixture(scope="module")
def names(host):
    name = host.backend.get_hostname()
    return {
        "host": name,
        "app": f"app.{name}.owlat.test",
        "api": f"api.{name}.owlat.test",
        "actions": f"actions.{name}.owlat.test",
        "ehlo": f"mail.{name}.owlat.test",
    }


@pytest.fixture(scope="module")
def address(names):
    """The lab host's address on the lab network, as seen from this machine."""
    out = subprocess.check_output(
        ["docker", "inspect", "-f", '{{(index .NetworkSettings.Networks "owlat-lab").IPAddress}}', names["host"]],
        text=True,
    )
    return out.strip()


@pytest.fixture(scope="module")
def tls(host):
    ctx = ssl.create_default_context(cadata=host.file(CA).content_string)
    return ctx


def secrets_on_host(host):
    """The stack's secrets file as a dict."""
    text = host.file(f"{CONF}/secrets.env").content_string
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def admin_key(host):
    return host.file(f"{CONF}/convex-admin-key.env").content_string.strip().split("=", 1)[1]


def test_web_app_over_https(address, tls, names):
    status, body = https_get(address, tls, names["app"], "/api/instance-info")
    assert status == 200
    info = json.loads(body)
    assert info["siteUrl"] == f"https://{names['app']}"
    assert info["convexUrl"] == f"https://{names['api']}"
    assert info["convexSiteUrl"] == f"https://{names['actions']}"
    assert info["deploymentMode"] == "selfhost"


def test_convex_api_over_https(address, tls, names):
    status, _ = https_get(address, tls, names["api"], "/version")
    assert status == 200


def test_http_actions_over_https(address, tls, names):
    status, body = https_get(address, tls, names["actions"], "/api/v1/health")
    assert status == 200
    assert json.loads(body)["status"] == "ok"


def test_certificate_names_the_host(address, tls, names):
    with socket.create_connection((address, 443), timeout=10) as raw:
        with tls.wrap_socket(raw, server_hostname=names["api"]) as s:
            sans = [v for k, v in s.getpeercert()["subjectAltName"] if k == "DNS"]
    assert names["api"] in sans


def test_smtp_banner_from_outside(address, names):
    with socket.create_connection((address, 25), timeout=10) as s:
        banner = s.recv(512).decode()
    assert banner.startswith(f"220 {names['ehlo']} Owlat MTA Bounce Processor")


@pytest.mark.parametrize("port", [3210, 3211, 3000, 3100, 6379, 6791, 3310])
def test_internal_ports_not_reachable_from_outside(address, port):
    with pytest.raises(OSError):
        socket.create_connection((address, port), timeout=3).close()


def test_only_caddy_and_smtp_are_published(host):
    published = set()
    for line in host.check_output("docker ps --format '{{.Names}} {{.Ports}}'").splitlines():
        name, _, ports = line.partition(" ")
        for hostport in re.findall(r"([0-9.:\[\]]+):(\d+)->", ports):
            published.add((name, hostport[1]))
    assert published == {(f"{STACK}-caddy", "80"), (f"{STACK}-caddy", "443"), (f"{STACK}-mta", "25")}


def test_secrets_root_only_in_exact_formats(host):
    f = host.file(f"{CONF}/secrets.env")
    assert (f.user, f.group, f.mode) == ("root", "root", 0o600)
    assert host.file(CONF).mode == 0o700
    values = secrets_on_host(host)
    assert re.fullmatch(r"[0-9a-f]{64}", values["INSTANCE_SECRET"])
    assert re.fullmatch(r"[0-9a-f]{64}", values["MTA_SECRET"])
    assert re.fullmatch(r"mta_[A-Za-z0-9]{40}", values["MTA_API_KEY"])
    assert re.fullmatch(r"whsec_[A-Za-z0-9]{40}", values["MTA_WEBHOOK_SECRET"])
    assert re.fullmatch(r"[A-Za-z0-9]{40}", values["BOUNCE_VERP_KEY"])
    assert re.fullmatch(r"[A-Za-z0-9]{32}", values["REDIS_PASSWORD"])
    assert re.fullmatch(r"[A-Za-z0-9]{48}", values["BETTER_AUTH_SECRET"])


def test_secrets_did_not_change_on_the_second_run(host):
    first = host.file("/root/secrets.first.sha256").content_string.split()[0]
    assert host.check_output(f"sha256sum {CONF}/secrets.env").split()[0] == first


def convex_ip(host):
    return host.check_output(
        "docker inspect -f '{{(index .NetworkSettings.Networks \"%s-net\").IPAddress}}' %s-convex" % (STACK, STACK)
    )


def test_admin_key_is_valid_and_root_only(host):
    f = host.file(f"{CONF}/convex-admin-key.env")
    assert f.mode == 0o600
    key = admin_key(host)
    assert key.startswith("convex-self-hosted|")
    code = host.check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Authorization: Convex {key}' "
        f"http://{convex_ip(host)}:3210/api/check_admin_key"
    )
    assert code == "200"


def test_deployment_env_pushed(host):
    key = admin_key(host)
    out = host.check_output(
        f"curl -sf -H 'Authorization: Convex {key}' http://{convex_ip(host)}:3210/api/v1/list_environment_variables"
    )
    env = json.loads(out)["environmentVariables"]
    assert env["EMAIL_PROVIDER"] == "mta"
    assert env["MTA_API_URL"] == "http://mta:3100"
    assert "CONVEX_SITE_URL" not in env
    assert env["INSTANCE_SECRET"] == secrets_on_host(host)["INSTANCE_SECRET"]


def https_post(address, ctx, hostname, path, body, headers):
    payload = json.dumps(body).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection((address, 443), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=hostname) as s:
            s.sendall((f"POST {path} HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n"
                       f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n{extra}\r\n").encode()
                      + payload)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest.decode(errors="replace")


def test_first_admin_exists_once(host, address, tls, names):
    """As upstream exposes it (apps/api/convex/seedAdmin.ts): seeding again through the public HTTP-actions
    hostname answers 409 - the first admin exists; a wrong instance secret is refused with 401."""
    body = {"email": "second@example.test", "name": "Second", "passwordHash": "0" * 32 + ":" + "0" * 128}
    secret = secrets_on_host(host)["INSTANCE_SECRET"]
    status, text = https_post(address, tls, names["actions"], "/seed/admin", body, {"X-Instance-Secret": secret})
    assert status == 409, text
    status, _ = https_post(address, tls, names["actions"], "/seed/admin", body, {"X-Instance-Secret": "0" * 64})
    assert status == 401


def test_deployment_env_has_upstreams_derived_keys(host):
    key = admin_key(host)
    env = json.loads(host.check_output(
        f"curl -sf -H 'Authorization: Convex {key}' http://{convex_ip(host)}:3210/api/v1/list_environment_variables"
    ))["environmentVariables"]
    addr = host.ansible("setup", "gather_subset=network")["ansible_facts"]["ansible_default_ipv4"]["address"]
    assert env["MTA_IP_POOLS"] == addr
    assert env["RATE_LIMIT_TRUSTED_PROXY"] == "xforwarded"
    assert env["OWLAT_VERSION"] == "0.4.4"
    assert env["MTA_INTERNAL_URL"] == "http://mta:3100"


def inspect(host, name):
    return json.loads(host.check_output(f"docker inspect {STACK}-{name}"))[0]


def test_convex_container_settings(host):
    c = inspect(host, "convex")
    assert c["Config"]["StopSignal"] == "SIGINT"
    env = dict(e.split("=", 1) for e in c["Config"]["Env"])
    assert env["DOCUMENT_RETENTION_DELAY"] == "172800"
    assert env["DISABLE_METRICS_ENDPOINT"] == "true"
    assert env["APPLICATION_MAX_CONCURRENT_QUERIES"] == "16"
    # Any non-empty value turns these on: they must be absent unless wanted.
    assert "DISABLE_BEACON" not in env and "DO_NOT_REQUIRE_SSL" not in env
    assert c["HostConfig"]["Memory"] > 0


def test_web_is_hardened(host):
    c = inspect(host, "web")
    assert c["HostConfig"]["ReadonlyRootfs"] is True
    assert "/tmp" in c["HostConfig"]["Tmpfs"]
    assert c["HostConfig"]["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in c["HostConfig"]["SecurityOpt"]


def test_no_container_gets_the_docker_socket(host):
    for name in host.check_output("docker ps --format '{{.Names}}'").split():
        mounts = json.loads(host.check_output(f"docker inspect -f '{{{{json .Mounts}}}}' {name}"))
        assert not any("docker.sock" in m.get("Source", "") for m in mounts), name


def test_redis_requires_its_password_and_keeps_aof(host):
    out = host.run(f"docker exec {STACK}-redis redis-cli ping")
    assert "NOAUTH" in out.stdout + out.stderr
    c = inspect(host, "redis")
    assert c["Config"]["User"] == "999:1000"
    password = host.file(f"{CONF}/redis.conf").content_string.split("requirepass ", 1)[1].split()[0]
    assert password not in json.dumps(c)  # never in the container definition
    aof = host.check_output(
        f"docker exec {STACK}-redis redis-cli --no-auth-warning -a {password} config get appendonly"
    )
    assert aof.split() == ["appendonly", "yes"]


def test_mta_reports_redis_connected(host):
    ip = host.check_output(
        "docker inspect -f '{{(index .NetworkSettings.Networks \"%s-net\").IPAddress}}' %s-mta" % (STACK, STACK)
    )
    health = json.loads(host.check_output(f"curl -sf http://{ip}:3100/health"))
    assert health["redis"] == "connected"
    assert health["worker"]["alive"] is True


def test_deploy_record_for_upgrades(host):
    record = json.loads(host.file(f"/etc/ansible/facts.d/owlat_{STACK}.fact").content_string)
    assert record["release"] == record["functions_release"] == "0.4.4"


def test_websocket_upgrade_on_the_api_hostname(address, tls, names):
    key = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample nonce
    with socket.create_connection((address, 443), timeout=10) as raw:
        with tls.wrap_socket(raw, server_hostname=names["api"]) as s:
            s.sendall(
                (
                    f"GET /api/sync HTTP/1.1\r\nHost: {names['api']}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            head = s.recv(4096).decode(errors="replace")
    assert head.startswith("HTTP/1.1 101"), head
    assert "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # the RFC's accept value for that nonce


def test_every_container_running_and_healthy(host):
    expected = {"convex", "redis", "web", "mta", "clamav", "caddy"}
    # ClamAV's Docker health check first runs 60 s after its start (interval 60 s): a fast converge can end before
    # it. Wait for that first verdict; "starting" must turn into "healthy", never "unhealthy".
    deadline = time.time() + 150
    while True:
        states = {}
        for line in host.check_output("docker ps -a --format '{{.Names}} {{.State}} {{.Status}}'").splitlines():
            name, state, status = line.split(" ", 2)
            if name.startswith(f"{STACK}-"):
                states[name[len(STACK) + 1:]] = (state, status)
        if not any("starting" in status for _, status in states.values()) or time.time() > deadline:
            break
        time.sleep(5)
    assert expected <= states.keys(), states
    for name in expected:
        state, status = states[name]
        assert state == "running", (name, status)
        assert "unhealthy" not in status and "starting" not in status, (name, status)
    # The one-shot functions deploy is removed after it ran.
    assert "convex-deploy" not in states


def test_every_container_carries_its_stack_and_service_label(host):
    # Identity is the label, never a name prefix: status, probes and restores find the stack's containers by it.
    rows = host.check_output(
        "docker ps -a --filter label=owlat.stack=%s --format '{{.Names}} {{.Label \"owlat.service\"}}'" % STACK
    ).splitlines()
    labelled = dict(row.split(" ", 1) for row in rows)
    assert set(labelled) >= {f"{STACK}-{key}" for key in ("convex", "redis", "web", "mta", "clamav", "caddy")}, rows
    assert all(name == f"{STACK}-{service}" for name, service in labelled.items()), rows
    # The volumes too: created labelled before their containers (a fresh host here).
    volumes = host.check_output("docker volume ls -q --filter label=owlat.stack=%s" % STACK).split()
    assert set(volumes) >= {f"{STACK}-{v}" for v in ("convex-data", "redis-data", "caddy-data", "caddy-config")}, volumes


EICAR_SCAN = r"""
import socket, struct, sys
e = b'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
s = socket.create_connection((sys.argv[1], 3310), timeout=10)
s.sendall(b'zINSTREAM\0' + struct.pack('>I', len(e)) + e + struct.pack('>I', 0))
print(s.recv(4096).decode().strip('\0'))
"""


def test_clamav_finds_eicar(host):
    ip = host.check_output(
        "docker inspect -f '{{(index .NetworkSettings.Networks \"%s-net\").IPAddress}}' %s-clamav" % (STACK, STACK)
    )
    host.run("cat > /tmp/eicar_scan.py <<'PY'\n%s\nPY" % EICAR_SCAN)
    out = host.check_output(f"python3 /tmp/eicar_scan.py {ip}")
    assert "FOUND" in out and "EICAR" in out, out


def test_check_mode_on_the_converged_host_changes_nothing_and_vvv_leaks_no_secret(host):
    """`--check -vvv` of the whole converge: no change reported, and no secret value in the output."""
    secrets = list(secrets_on_host(host).values())
    secrets.append(admin_key(host))
    rc, out = run_converge("--check", "-vvv")
    assert rc == 0, out[-3000:]
    recap = re.search(r"owlat-mol-stack\s+: ok=\d+\s+changed=(\d+)", out)
    assert recap and recap.group(1) == "0", out[-3000:]
    leaked = [s[:4] + "..." for s in secrets if len(s) >= 8 and s in out]
    assert not leaked, f"secret values in the -vvv output: {leaked}"


def test_secrets_escrowed_on_the_controller_vault_encrypted(host, names):
    escrow = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "escrow", names["host"], f"{STACK}.env")
    with open(escrow, encoding="utf-8") as fh:
        assert fh.readline().startswith("$ANSIBLE_VAULT;1.1;AES256")
    assert oct(os.stat(escrow).st_mode & 0o777) == "0o600"
    plain = subprocess.check_output(
        [
            "ansible-vault", "view", "--vault-password-file",
            os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "files", "escrow-vault-pass"), escrow,
        ],
        text=True,
    )
    assert dict(line.split("=", 1) for line in plain.splitlines() if "=" in line) == secrets_on_host(host)


def test_a_changed_secret_is_refused_without_the_explicit_flag(host):
    """An operator value that differs from the stored one stops the run, names the secret, changes nothing."""
    before = host.check_output(f"sha256sum {CONF}/secrets.env")
    rc, out = run_converge("-e", '{"owlat_stack_secrets": {"REDIS_PASSWORD": "' + "Z" * 32 + '"}}')
    assert rc != 0
    # Whitespace-insensitive: the yaml callback of ansible-core 2.17 folds long messages.
    assert "REDIS_PASSWORD differs from the value stored" in re.sub(r"\s+", " ", out), out[-2000:]
    assert "owlat_stack_secrets_allow_change" in out
    assert host.check_output(f"sha256sum {CONF}/secrets.env") == before


def test_a_failed_container_is_told_by_name_without_secrets_and_the_running_one_stays(host):
    """A container task hides its result (the environment holds secrets); its failure must still say which
    container failed and why. An image that does not exist: the pull fails, the running web container stays."""
    image = host.check_output(f"docker inspect -f '{{{{.Config.Image}}}}' {STACK}-web")
    missing = image.rsplit(":", 1)[0] + ":0.0.0-missing"
    started = host.check_output(f"docker inspect -f '{{{{.State.StartedAt}}}}' {STACK}-web")
    rc, out = run_converge("-e", json.dumps({"owlat_stack_images": {"web": missing}}))
    flat = re.sub(r"\s+", " ", out)
    assert rc != 0, out[-3000:]
    assert f"container {STACK}-web (service web) failed" in flat, out[-3000:]
    assert "0.0.0-missing" in flat and f"docker logs {STACK}-web" in flat, out[-3000:]
    for value in secrets_on_host(host).values():
        assert value not in out
    assert host.check_output(f"docker inspect -f '{{{{.Config.Image}}}} {{{{.State.StartedAt}}}}' {STACK}-web") \
        == f"{image} {started}"


def test_a_container_changed_by_hand_is_put_back_and_the_others_left_alone(host):
    """Compare-then-act: a stopped container, a removed one and a widened config directory are repaired by the next
    run; the containers that were in order are not touched (same start time)."""
    def started(name):
        return host.check_output(f"docker inspect -f '{{{{.State.StartedAt}}}}' {STACK}-{name}")

    convex_before, redis_before = started("convex"), started("redis")
    host.check_output(f"docker stop {STACK}-mta && docker rm -f {STACK}-web && chmod 0755 {CONF}")
    rc, out = run_converge()
    assert rc == 0, out[-3000:]
    recap = re.search(r"owlat-mol-stack\s+: ok=\d+\s+changed=(\d+)", out)
    assert recap and int(recap.group(1)) >= 2, out[-3000:]  # the app containers task, the secrets module
    for name in ("web", "mta"):
        assert host.check_output(f"docker inspect -f '{{{{.State.Status}}}}' {STACK}-{name}") == "running"
    assert host.file(CONF).mode == 0o700
    assert (started("convex"), started("redis")) == (convex_before, redis_before)
    rc, out = run_converge()
    recap = re.search(r"owlat-mol-stack\s+: ok=\d+\s+changed=(\d+)", out)
    assert rc == 0 and recap and recap.group(1) == "0", out[-3000:]


def test_files_and_deployment_env_changed_by_hand_are_put_back_then_a_no_op_is_one_module_run(host, tmp_path):
    """Drift the plain run must find although a converged run reads the host only once: an edited Caddyfile, a
    Redis config with a wrong mode, a deployment variable changed and one removed through the Convex API."""
    from converge_run import run_playbook

    caddyfile = host.file(f"{CONF}/caddy/Caddyfile").content_string
    key = admin_key(host)
    ip = convex_ip(host)
    env_before = json.loads(host.check_output(
        f"curl -fsS -H 'Authorization: Convex {key}' http://{ip}:3210/api/v1/list_environment_variables"))
    changes = json.dumps({"changes": [{"name": "SITE_URL", "value": "https://elsewhere.example"},
                                      {"name": "EMAIL_PROVIDER", "value": None}]})
    host.check_output(f"curl -fsS -X POST -H 'Content-Type: application/json' -H 'Authorization: Convex {key}' "
                      f"-d '{changes}' http://{ip}:3210/api/v1/update_environment_variables")
    host.check_output(f"echo '# edited by hand' >> {CONF}/caddy/Caddyfile && chmod 0644 {CONF}/redis.conf")

    rc, out = run_playbook("owlat.selfhost.site")
    assert rc == 0, out[-3000:]
    assert host.file(f"{CONF}/caddy/Caddyfile").content_string == caddyfile
    assert host.file(f"{CONF}/redis.conf").mode == 0o600
    env_after = json.loads(host.check_output(
        f"curl -fsS -H 'Authorization: Convex {key}' http://{ip}:3210/api/v1/list_environment_variables"))
    assert env_after == env_before

    runs_file = tmp_path / "runs.json"
    os.environ["OWLAT_MODULE_RUNS_FILE"] = str(runs_file)
    try:
        rc, out = run_playbook("owlat.selfhost.site")
    finally:
        del os.environ["OWLAT_MODULE_RUNS_FILE"]
    recap = re.search(r"owlat-mol-stack\s+: ok=\d+\s+changed=(\d+)", out)
    assert rc == 0 and recap and recap.group(1) == "0", out[-3000:]
    runs = json.loads(runs_file.read_text())["hosts"]["owlat-mol-stack"]["runs"]
    # The fast path: one read of the host against the record of the repairing run, nothing else.
    assert runs == 1, f"a no-op ran {runs} modules on the host:\n" + out[-4000:]
    assert re.search(r"owlat-mol-stack: as its run of \S+ left it, nothing to do", re.sub(r"\s+", " ", out)), out[-3000:]
    assert re.search(r"^\s*owlat-mol-stack\s+owlat\s+\S+\s+https://\S+\s+as the run of \S+ left it \(\d+ containers running\)",
                     out, re.M), out[-3000:]

    # A deployment variable changed through the API, and nothing else: the fast path sees it too.
    host.check_output(f"curl -fsS -X POST -H 'Content-Type: application/json' -H 'Authorization: Convex {key}' "
                      f"-d '{changes}' http://{ip}:3210/api/v1/update_environment_variables")
    rc, out = run_playbook("owlat.selfhost.site")
    assert rc == 0, out[-3000:]
    assert "full run: the Convex deployment environment of stack owlat changed" in re.sub(r"\s+", " ", out), out[-3000:]
    assert json.loads(host.check_output(
        f"curl -fsS -H 'Authorization: Convex {key}' http://{ip}:3210/api/v1/list_environment_variables")) == env_before


# ---------------------------------------------------------------------------------------------------
# Upstream's own client, through Caddy, with the stack's admin key
# ---------------------------------------------------------------------------------------------------
COLLECTION = pathlib.Path(__file__).resolve().parents[3]
CLI_VERSIONS = [line.split()[0] for line in (COLLECTION / "tests/cli/versions").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
# Node resolves the lab's hostnames to the lab host (the lab has no DNS for *.owlat.test on this machine).
LAB_DNS = """
const dns = require('dns');
const lookup = dns.lookup;
dns.lookup = function (name, opts, cb) {
  if (typeof opts === 'function') { cb = opts; opts = {}; }
  if (name.endsWith('.owlat.test')) {
    const addr = process.env.OWLAT_LAB_ADDRESS;
    return process.nextTick(() => opts && opts.all ? cb(null, [{address: addr, family: 4}]) : cb(null, addr, 4));
  }
  return lookup.call(this, name, opts, cb);
};
"""


@pytest.fixture(scope="module")
def convex_cli(host, address, names, tmp_path_factory):
    work = tmp_path_factory.mktemp("cli")
    (work / "ca.crt").write_text(host.file(CA).content_string)
    (work / "labdns.js").write_text(LAB_DNS)

    def run(version, *args, timeout=120):
        run_bin = COLLECTION / ".tools/convex-cli" / version / "run"
        assert run_bin.exists(), f"convex CLI {version} missing: tests/cli/install.sh (make deps)"
        env = {"PATH": os.environ["PATH"], "HOME": str(work), "CI": "1", "NO_COLOR": "1",
               "CONVEX_SELF_HOSTED_URL": f"https://{names['api']}", "CONVEX_SELF_HOSTED_ADMIN_KEY": admin_key(host),
               "NODE_EXTRA_CA_CERTS": str(work / "ca.crt"), "NODE_OPTIONS": f"--require {work / 'labdns.js'}",
               "OWLAT_LAB_ADDRESS": address}
        out = subprocess.run([str(run_bin), *args], env=env, capture_output=True, text=True, timeout=timeout,
                             cwd=run_bin.parent)
        assert out.returncode == 0, f"convex {version} {' '.join(args)}: {out.returncode}\n{out.stdout}\n{out.stderr}"
        return out.stdout

    return run, work


@pytest.mark.parametrize("version", CLI_VERSIONS)
def test_convex_cli_through_caddy_agrees_with_the_collection(host, convex_cli, version):
    run, work = convex_cli
    key = admin_key(host)
    api = json.loads(host.check_output(
        f"curl -sf -H 'Authorization: Convex {key}' http://{convex_ip(host)}:3210/api/v1/list_environment_variables"
    ))["environmentVariables"]
    listed = dict(line.split("=", 1) for line in run(version, "env", "list").splitlines() if "=" in line)
    # What the collection pushed (convex_env reads the same list) is what the CLI lists.
    assert set(listed) == set(api) and listed["OWLAT_VERSION"] == api["OWLAT_VERSION"] == "0.4.4"
    assert run(version, "env", "get", "SITE_URL").strip() == api["SITE_URL"]
    run(version, "env", "set", "OWLAT_CLI_PROBE", "from-the-cli")
    assert json.loads(host.check_output(
        f"curl -sf -H 'Authorization: Convex {key}' http://{convex_ip(host)}:3210/api/v1/list_environment_variables"
    ))["environmentVariables"]["OWLAT_CLI_PROBE"] == "from-the-cli"
    run(version, "env", "remove", "OWLAT_CLI_PROBE")
    assert "OWLAT_CLI_PROBE" not in run(version, "env", "list")
    # export: the zip is downloaded and opened; import --replace-all of it leaves the same data.
    out_dir = work / f"export-{version}"
    out_dir.mkdir()
    run(version, "export", "--path", str(out_dir), timeout=300)
    (zip_path,) = out_dir.glob("snapshot_*.zip")
    import zipfile
    with zipfile.ZipFile(zip_path) as zf:
        users = [json.loads(x) for x in zf.read("users/documents.jsonl").decode().splitlines()]
    assert len(users) == 1
    before = run(version, "data", "users", "--format", "jsonLines")
    run(version, "import", "--replace-all", "-y", str(zip_path), timeout=300)
    assert run(version, "data", "users", "--format", "jsonLines") == before


# ---------------------------------------------------------------------------------------------------
# Images copied into the operator's registry (playbooks/mirror.yml), from the lab registry as the source
# ---------------------------------------------------------------------------------------------------
def test_mirror_copies_every_image_of_a_release(host):
    from converge_run import run_playbook, recap

    dest = "registry.owlat.lab:5000/operator"
    args = ["-e", f"owlat_stack_mirror_registry={dest}", "-e", "owlat_stack_mirror_source=registry.owlat.lab:5000",
            "-e", '{"owlat_stack_mirror_releases": ["0.4.3", "0.4.4"]}']
    started = time.time()
    rc, out = run_playbook("owlat.selfhost.mirror", *args, timeout=1800)
    first_run = round(time.time() - started, 1)
    assert rc == 0, out[-3000:]
    # Every pinned reference of both releases is now in the destination, pullable by that reference.
    import yaml
    catalog = yaml.safe_load((COLLECTION / "roles/stack/vars/main.yml").read_text())["owlat_stack_release_catalog"]
    refs = {r for v in ("0.4.3", "0.4.4") for r in catalog[v]["images"].values()}
    for ref in sorted(refs):
        first = ref.split("/", 1)[0]
        if "/" in ref and ("." in first or ":" in first):
            path = ref.split("/", 1)[1]  # ghcr.io/org/app:t -> org/app:t
        else:
            path = ref if "/" in ref else "library/" + ref  # Docker Hub names, as image_mirror maps them
        host.check_output(f"docker pull -q {dest}/{path}")
    started = time.time()
    rc, out = run_playbook("owlat.selfhost.mirror", *args, timeout=1800)
    assert rc == 0 and recap(out)[host.backend.get_hostname()]["changed"] == 0, out[-3000:]
    figures = json.dumps({"images": len(refs), "first_run_seconds": first_run, "second_run_seconds": round(time.time() - started, 1)})
    import tempfile
    for where in (os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp"), tempfile.gettempdir()):
        pathlib.Path(where, "owlat-mirror-figures.json").write_text(figures)


# ---------------------------------------------------------------------------------------------------
# Last: a first deploy from nothing with -vvv shows no secret (mint, env push, admin seed, registry login,
# backup repository password)
# ---------------------------------------------------------------------------------------------------
def test_a_first_deploy_with_vvv_leaks_no_secret(host):
    host.check_output(
        f"docker ps -aq --filter name=^{STACK}- | xargs -r docker rm -f >/dev/null; "
        f"docker volume ls -q --filter name=^{STACK}- | xargs -r docker volume rm >/dev/null; "
        f"rm -rf {CONF} /etc/ansible/facts.d/owlat_{STACK}.fact /etc/docker/owlat-registry-logins.sha256 "
        "/root/secrets.first.sha256")
    backup_password = "vvv-lab-backup-" + "Q7" * 12  # lab only; a local repository on the host
    rc, out = run_converge("-vvv", "-e", f"owlat_backup_password={backup_password}", "-e", "owlat_backup_timer_enabled=false",
                           timeout=1800)
    assert rc == 0, out[-3000:]
    assert "owlat.selfhost.backup" in out  # the backup role ran with the password
    # Each secret-handling step really ran in this output (changed), not skipped.
    for task in ("Service | Log in to private registries", "Functions | Admin key",
                 "Functions | Convex deployment environment", "App | First administrator (201 created"):
        m = re.search(re.escape(task) + r".*?\*\n(.*?)(?=\nTASK \[|\nRUNNING HANDLER|\nPLAY )", out, re.S)
        assert m and "changed:" in m.group(1), f"{task} did not run with a change:\n{m.group(1)[:500] if m else out[-2000:]}"
    secrets = list(secrets_on_host(host).values()) + [admin_key(host)]
    registry_password = pathlib.Path(os.environ["OWLAT_LAB_STATE"], "registry-password").read_text().strip()
    secrets += [registry_password, backup_password]
    leaked = [s[:4] + "..." for s in secrets if len(s) >= 8 and s in out]
    assert not leaked, f"secret values in the -vvv output of a first deploy: {leaked}"
