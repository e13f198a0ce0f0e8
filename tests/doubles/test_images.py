"""Docker smoke tests for the test-double images (slow; opt-in):

    OWLAT_DOUBLES_DOCKER=1 .venv/bin/pytest -q tests/doubles/test_images.py

Builds the five images as owlat-double-dev/* (BASE: $BASE or the newest owlat-lab/base-rootfs image), runs
throwaway containers named dbl-test-* on the default bridge and removes containers and images afterwards
(set OWLAT_DOUBLES_KEEP_IMAGES=1 to keep the images).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "owlat-double-dev"
REV = "c51b14bac5d8f4b1cfedbbc64bfe29c3a1b7adef"
IMAGES = {
    "convex-backend": f"{PREFIX}/convex-backend:{REV}",
    "convex-dashboard": f"{PREFIX}/convex-dashboard:{REV}",
    "web": f"{PREFIX}/web:0.4.4",
    "mta": f"{PREFIX}/mta:0.4.4",
    "convex-deploy": f"{PREFIX}/convex-deploy:0.4.4",
}
FAILING = f"{PREFIX}/convex-backend:fail-health"
SECRET = "ab" * 32

pytestmark = pytest.mark.skipif(os.environ.get("OWLAT_DOUBLES_DOCKER") != "1",
                                reason="set OWLAT_DOUBLES_DOCKER=1 to build and run the double images")


def sh(*args, check=True, timeout=300):
    out = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} -> {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out


def http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def ip_of(name):
    return sh("docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).stdout.strip()


def wait_http(url, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return http("GET", url)
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def state(name):
    return json.loads(sh("docker", "inspect", "-f", "{{json .State}}", name).stdout)


@pytest.fixture(scope="module")
def images():
    base = os.environ.get("BASE") or sh("docker", "images", "--format", "{{.Repository}}:{{.Tag}}",
                                        "owlat-lab/base-rootfs").stdout.split("\n")[0].strip()
    # make doubles-images builds the lab images first: a missing base image is a failure there, not a skip.
    assert base, "no owlat-lab/base-rootfs image: run lab/lab.py images first"
    for name, tag in IMAGES.items():
        version = tag.rsplit(":", 1)[1]
        sh("docker", "build", "-q", "-f", f"{HERE}/{name}/Dockerfile", "--build-arg", f"BASE={base}",
           "--build-arg", f"DOUBLE_VERSION={version}", "-t", tag, HERE, timeout=900)
    sh("docker", "build", "-q", "-f", f"{HERE}/convex-backend/Dockerfile", "--build-arg", f"BASE={base}",
       "--build-arg", "DOUBLE_FAIL_HEALTH=true", "-t", FAILING, HERE, timeout=900)
    yield IMAGES
    if os.environ.get("OWLAT_DOUBLES_KEEP_IMAGES") != "1":
        sh("docker", "rmi", *IMAGES.values(), FAILING, check=False)


@pytest.fixture
def containers():
    names = []
    yield names
    for name in names:
        sh("docker", "rm", "-f", "-v", name, check=False)


def run(containers, name, image, *args):
    containers.append(name)
    sh("docker", "rm", "-f", "-v", name, check=False)
    return sh("docker", "run", "-d", "--name", name, *args, image)


def test_image_metadata(images):
    for name, tag in images.items():
        cfg = json.loads(sh("docker", "inspect", "-f", "{{json .Config}}", tag).stdout)
        labels = cfg["Labels"]
        assert labels["org.opencontainers.image.version"] == tag.rsplit(":", 1)[1]
        assert "TEST DOUBLE" in labels["org.opencontainers.image.description"]
        if name.startswith("convex-") and name != "convex-deploy":
            assert labels["org.opencontainers.image.revision"] == REV
        assert cfg.get("Healthcheck") is None
    backend = json.loads(sh("docker", "inspect", "-f", "{{json .Config}}", images["convex-backend"]).stdout)
    assert backend["WorkingDir"] == "/convex" and "/convex/data" in backend["Volumes"]
    assert set(backend["ExposedPorts"]) == {"3210/tcp", "3211/tcp"} and backend.get("User", "") in ("", "root")


def test_backend_container(images, containers):
    name = "dbl-test-convex"
    run(containers, name, images["convex-backend"], "-e", "PORT=9999")
    ip = ip_of(name)
    deadline = time.time() + 20
    while sh("docker", "exec", name, "curl", "-fsS", "http://localhost:3210/version", check=False).returncode:
        assert time.time() < deadline, sh("docker", "logs", name).stderr
        time.sleep(0.2)
    assert http("GET", f"http://{ip}:3210/version") == (200, b"unknown")
    out = sh("docker", "exec", name, "./generate_admin_key.sh")
    key = out.stdout.strip()
    assert out.stderr.strip() == "Admin key:" and re.fullmatch(r"convex-self-hosted\|[0-9a-f]{90}", key)
    hdr = {"Authorization": f"Convex {key}"}
    assert http("GET", f"http://{ip}:3210/api/check_admin_key", headers=hdr)[0] == 200
    assert len(sh("docker", "exec", name, "cat", "/convex/data/credentials/instance_secret").stdout) == 64

    # the convex-deploy image against it, over the default bridge
    deploy = sh("docker", "run", "--rm", "--name", "dbl-test-deploy", "-e", f"CONVEX_SELF_HOSTED_URL=http://{ip}:3210",
                "-e", f"CONVEX_SELF_HOSTED_ADMIN_KEY={key}", images["convex-deploy"], check=False)
    assert deploy.returncode == 0, deploy.stderr
    assert sh("docker", "run", "--rm", "--entrypoint", "id", images["convex-deploy"], "-u").stdout.strip() == "1000"
    status, body = http("GET", f"http://{ip}:3211/api/v1/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    envset = sh("docker", "run", "--rm", "--name", "dbl-test-deploy", "-e", f"CONVEX_SELF_HOSTED_URL=http://{ip}:3210",
                "-e", f"CONVEX_SELF_HOSTED_ADMIN_KEY={key}", images["convex-deploy"],
                "convex", "env", "set", "--", "INSTANCE_SECRET", SECRET)
    assert "Successfully set INSTANCE_SECRET" in envset.stderr
    pw = "00" * 16 + ":" + "11" * 64
    seed = http("POST", f"http://{ip}:3211/seed/admin", {"email": "a@lab.test", "name": "A", "passwordHash": pw},
                {"X-Instance-Secret": SECRET, "Content-Type": "application/json"})
    assert seed[0] == 201
    bad = sh("docker", "run", "--rm", "--name", "dbl-test-deploy", "-e", f"CONVEX_SELF_HOSTED_URL=http://{ip}:3210",
             "-e", "CONVEX_SELF_HOSTED_ADMIN_KEY=convex-self-hosted|00", images["convex-deploy"], check=False)
    assert bad.returncode != 0 and "401 BadAdminKey" in bad.stderr

    # docker stop sends SIGTERM: ignored, so the container only dies at the end of the grace period
    t0 = time.time()
    sh("docker", "stop", "-t", "3", name)
    elapsed = time.time() - t0
    assert elapsed >= 2.8, elapsed
    st = state(name)
    assert st["ExitCode"] == 137, st
    assert "SIGTERM: ignored" in sh("docker", "logs", name).stderr

    # another run (same volume): SIGINT stops it at once with exit 0; the key and data survived
    sh("docker", "start", name)
    ip = ip_of(name)
    wait_http(f"http://{ip}:3210/version")
    assert http("GET", f"http://{ip}:3210/api/check_admin_key", headers=hdr)[0] == 200
    assert http("GET", f"http://{ip}:3211/api/v1/health")[0] == 200
    t0 = time.time()
    sh("docker", "kill", "-s", "INT", name)
    deadline = time.time() + 10
    while state(name)["Running"]:
        assert time.time() < deadline
        time.sleep(0.1)
    assert time.time() - t0 < 3 and state(name)["ExitCode"] == 0
    logs = sh("docker", "logs", name).stderr
    assert "db metadata version up to date at" in logs and "database closed" in logs


def test_backend_fail_health(images, containers):
    run(containers, "dbl-test-convex-fail", FAILING)
    ip = ip_of("dbl-test-convex-fail")
    assert wait_http(f"http://{ip}:3210/version")[0] == 503
    assert sh("docker", "exec", "dbl-test-convex-fail", "curl", "-f", "-s", "http://localhost:3210/version",
              check=False).returncode != 0


def test_backend_bad_secret_exits(images, containers):
    run(containers, "dbl-test-convex-bad", images["convex-backend"], "-e", "INSTANCE_SECRET=nothex")
    deadline = time.time() + 10
    while state("dbl-test-convex-bad")["Running"]:
        assert time.time() < deadline
        time.sleep(0.1)
    assert state("dbl-test-convex-bad")["ExitCode"] != 0
    assert "64 hex" in sh("docker", "logs", "dbl-test-convex-bad").stderr


def test_web_container_read_only(images, containers):
    name = "dbl-test-web"
    run(containers, name, images["web"], "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
        "-e", "NUXT_PUBLIC_SITE_URL=https://app.lab.test", "-e", "OWLAT_DEPLOYMENT_MODE=selfhost")
    ip = ip_of(name)
    status, body = wait_http(f"http://{ip}:3000/api/instance-info")
    assert status == 200 and json.loads(body)["deploymentMode"] == "selfhost"
    assert sh("docker", "exec", name, "id", "-u").stdout.strip() == "1000"
    t0 = time.time()
    sh("docker", "stop", "-t", "10", name)
    assert time.time() - t0 < 5 and state(name)["ExitCode"] == 0


def test_dashboard_container(images, containers):
    name = "dbl-test-dashboard"
    run(containers, name, images["convex-dashboard"], "-e", "NEXT_PUBLIC_DEPLOYMENT_URL=https://api.lab.test")
    status, body = wait_http(f"http://{ip_of(name)}:6791/")
    assert status == 200 and b"https://api.lab.test" in body


def test_mta_container(images, containers):
    env = ["-e", "MTA_API_KEY=mta_" + "k" * 40, "-e", "RETURN_PATH_DOMAIN=bounces.lab.test",
           "-e", "CONVEX_SITE_URL=http://convex:3211", "-e", "MTA_WEBHOOK_SECRET=whsec_" + "w" * 40,
           "-e", "MTA_SECRET=" + "ab" * 32, "-e", "BOUNCE_VERP_KEY=Vq3r8LmN2pX7sT4wY9zB1cD6fG5hJ0kQ2mR8nS3t",
           "-e", "EHLO_HOSTNAME=mail.lab.test", "-e", "FBL_DEDUP_PROTOCOL=owned-v2",
           "-e", "FBL_DEDUP_CUTOVER_ACK=fresh-install", "-e", "REDIS_URL=redis://:pw@192.0.2.1:6379"]
    name = "dbl-test-mta"
    run(containers, name, images["mta"], *env)
    ip = ip_of(name)
    status, body = wait_http(f"http://{ip}:3100/health")
    body = json.loads(body)
    assert status == 200 and body["redis"] == "disconnected" and body["status"] == "degraded"
    assert sh("docker", "exec", name, "id", "-u").stdout.strip() == "1000"
    # SMTP on 25 as uid 1000; the host is not loopback for the container: tarpit before the EHLO answer
    with socket.create_connection((ip, 25), timeout=15) as s:
        f = s.makefile("rb")
        assert f.readline() == b"220 mail.lab.test Owlat MTA Bounce Processor\r\n"
        t0 = time.time()
        s.sendall(b"EHLO outside.example\r\n")
        assert f.readline() == b"250-mail.lab.test greets outside.example\r\n"
        assert time.time() - t0 >= 4.5
    sh("docker", "stop", "-t", "10", name)
    assert state(name)["ExitCode"] == 0
    bad = "dbl-test-mta-bad"
    run(containers, bad, images["mta"], *env, "-e", "EHLO_HOSTNAME=localhost")
    deadline = time.time() + 10
    while state(bad)["Running"]:
        assert time.time() < deadline
        time.sleep(0.1)
    assert state(bad)["ExitCode"] != 0 and "EHLO_HOSTNAME" in sh("docker", "logs", bad).stderr
