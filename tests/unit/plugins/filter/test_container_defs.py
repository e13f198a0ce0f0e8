import pytest

from ansible_collections.owlat.selfhost.plugins.filter.container_digests import FilterModule as Digests
from ansible_collections.owlat.selfhost.plugins.filter.container_failures import FilterModule as Failures
from ansible_collections.owlat.selfhost.plugins.filter.container_results import FilterModule as Results

digests = Digests().filters()["container_digests"]
failures = Failures().filters()["container_failures"]
results = Results().filters()["container_results"]

WEB = {"name": "acme-web", "image": "ghcr.io/wolvesdotink/web:0.4.4", "state": "started",
       "env": {"PORT": "3000", "INSTANCE_SECRET": "s3cr3t-instance", "NUXT_PUBLIC_SITE_URL": "https://app.example"}}
DB = {"name": "acme-convex", "image": "ghcr.io/get-convex/convex-backend:abc", "state": "started",
      "env": {"POSTGRES_URL": "postgres://owlat:pw-in-url@db:5432", "RUST_LOG": "info"}}
SECRETS = {"INSTANCE_SECRET": "s3cr3t-instance", "REDIS_PASSWORD": "redis-pass-123"}


def test_every_rendered_option_changes_the_digest():
    base = digests({"web": WEB}, "task")["web"]
    assert len(base) == 64
    for change in ({"env": dict(WEB["env"], PORT="3001")}, {"image": "ghcr.io/wolvesdotink/web:0.4.3"},
                   {"memory": "1g"}, {"state": "absent"}):
        assert digests({"web": dict(WEB, **change)}, "task")["web"] != base, change
    assert digests({"web": WEB}, "task changed")["web"] != base  # the container task itself changed
    # Key order is not a change (the definition is rendered as canonical JSON).
    assert digests({"web": dict(reversed(list(WEB.items())))}, "task")["web"] == base


def test_a_key_the_task_would_ignore_is_refused():
    with pytest.raises(ValueError, match="unknown option.*stop_sigal"):
        digests({"web": dict(WEB, stop_sigal="SIGINT")})
    with pytest.raises(ValueError, match="missing image"):
        digests({"web": {"name": "acme-web", "state": "started"}})


def test_results_take_the_address_from_the_run_or_the_probe_and_drop_the_inspect_data():
    run = {"results": [
        {"item": "web", "changed": True, "container": {
            "HostConfig": {"NetworkMode": "acme-net"},
            "Config": {"Env": ["INSTANCE_SECRET=s3cr3t-instance"]},
            "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.9"}, "acme-net": {"IPAddress": "10.1.0.5"}}}}},
        {"item": "mta", "skipped": True, "changed": False},
        {"item": "clamav", "skipped": True, "changed": False},
    ]}
    probe = {"containers": {"mta": {"ip": "10.1.0.6"}}}
    out = results(run, probe)
    assert out == {"web": {"changed": True, "skipped": False, "ip": "10.1.0.5"},
                   "mta": {"changed": False, "skipped": True, "ip": "10.1.0.6"},
                   "clamav": {"changed": False, "skipped": True, "ip": None}}
    assert "s3cr3t" not in repr(out)
    assert results(run, probe, "ip") == {"web": "10.1.0.5", "mta": "10.1.0.6"}


def test_a_failure_names_the_container_and_keeps_no_secret():
    failed = {"failed": True, "msg": "One or more items failed", "results": [
        {"item": "web", "changed": False, "skipped": True},
        {"item": "convex", "failed": True,
         "msg": "Error starting container: env POSTGRES_URL=postgres://owlat:pw-in-url@db:5432 "
                "INSTANCE_SECRET=s3cr3t-instance redis://:redis-pass-123@redis:6379 RUST_LOG=info"},
    ]}
    text = failures(failed, {"web": WEB, "convex": DB}, SECRETS)
    assert "container acme-convex (service convex) failed" in text
    assert "docker logs acme-convex" in text
    for secret in ("pw-in-url", "s3cr3t-instance", "redis-pass-123"):
        assert secret not in text
    assert "RUST_LOG=info" in text  # what is not secret stays readable
    assert "acme-web" not in text  # the container that did not fail is not named


def test_a_failure_without_item_results_is_still_told():
    text = failures({"failed": True, "msg": "template error near s3cr3t-instance"}, {"web": WEB}, SECRETS)
    assert text.startswith("the container task failed: template error near <redacted>")
