"""The collection's playbooks run the way AWX / AAP runs a job: through ansible-runner, with a private data
directory (env/extravars, env/envvars, env/ssh_key, env/settings, inventory/, project/), the collection found
through ANSIBLE_COLLECTIONS_PATH, a read-only project directory, credentials injected as extra vars marked
!unsafe (as AWX injects custom credential types), and SSH keys handed to an ssh-agent.

Against private lab hosts (bench/fleet.py; prefix owlat-runner-host, addresses .181 and up), so it never
touches `make demo`'s hosts or Molecule's. Runs site.yml, then upgrade.yml when the collection has it, then
status.yml, and checks from the job events and artifacts that every host was reported and nothing failed,
and that no secret reached the job output (AWX stores and shows it).

  .venv/bin/pytest -v tests/runner            (about 5 minutes for 2 hosts on a loaded 2-core machine)
Environment: OWLAT_RUNNER_HOSTS (2), OWLAT_RUNNER_SOURCE (worktree: the checkout with uncommitted files;
head: the last commit, as AWX would sync it), OWLAT_RUNNER_KEEP=1 keeps the hosts and the data directory,
OWLAT_RUNNER_EMPTY_INPUTS (awx: empty optional credential inputs as `!unsafe ''`, as AWX writes them; plain).
"""

import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import time

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent
PREFIX = "owlat-runner-host"
N_HOSTS = int(os.environ.get("OWLAT_RUNNER_HOSTS", "2"))
SOURCE = os.environ.get("OWLAT_RUNNER_SOURCE", "worktree")
KEEP = os.environ.get("OWLAT_RUNNER_KEEP") == "1"
# awx: empty optional credential inputs are injected as AWX does, `!unsafe ''` (ansible-core 2.19.14 loads that
# as None, not ''); plain: as a plain '' (to test the rest of the path while the roles do not handle None).
EMPTY_INPUTS = os.environ.get("OWLAT_RUNNER_EMPTY_INPUTS", "awx")
LAB_STATE = pathlib.Path(os.environ.get("OWLAT_LAB_STATE", ROOT / "lab/.state"))
CREDENTIAL_TYPES = ROOT / "extensions/awx/credential_types"

import ansible_runner  # noqa: E402  (a missing runner is a failure, never a silent skip)


def _docker_ok():
    return shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(autouse=True, scope="module")
def _lab_engine():
    """These tests need the lab's Docker engine; without it they fail (a run that tests nothing is not green)."""
    assert _docker_ok(), "needs the lab's Docker engine: lab/lab.py engine (make runner does it)"


# ------------------------------------------------------------------------------------ AWX-like pieces


class Unsafe(str):
    """A value AWX injects from a credential: written as !unsafe so Ansible never templates it."""


def _unsafe_representer(dumper, data):
    return dumper.represent_scalar("!unsafe", str(data))


yaml.SafeDumper.add_representer(Unsafe, _unsafe_representer)


def inject(credential_type, inputs):
    """Render a custom credential type's extra_vars injector like AWX does (every string a template over the
    credential's inputs; missing optional inputs render empty) and mark the results !unsafe."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    ctype = yaml.safe_load((CREDENTIAL_TYPES / credential_type).read_text())
    fields = {f["id"]: inputs.get(f["id"], "") for f in ctype["inputs"]["fields"]}
    missing = [r for r in ctype["inputs"].get("required", []) if not fields.get(r)]
    assert not missing, "credential %s: required inputs %s" % (credential_type, missing)
    env = ImmutableSandboxedEnvironment()

    def render(node):
        if isinstance(node, dict):
            return {render(k): render(v) for k, v in node.items()}
        if isinstance(node, list):
            return [render(v) for v in node]
        value = env.from_string(node).render(**fields)
        return Unsafe(value) if value or EMPTY_INPUTS == "awx" else value

    return render(ctype["injectors"]["extra_vars"])


def project_files(dest):
    """The project as AWX would sync it: the last commit (head) or the checkout's files (worktree)."""
    if SOURCE == "head":
        data = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(dest, filter="data")
        return
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                            check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def make_read_only(path):
    for p in sorted(path.rglob("*"), reverse=True) + [path]:
        mode = p.stat().st_mode
        p.chmod(mode & ~0o222)


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory):
    """Private data directory + lab hosts; yields a function that runs one playbook as a job."""
    base = tmp_path_factory.mktemp("awx-job")
    inventory_src = base / "fleet"
    env = dict(os.environ, OWLAT_LAB_STATE=str(LAB_STATE), PATH="%s:%s" % (VENV_BIN, os.environ["PATH"]))
    subprocess.run([sys.executable, str(ROOT / "bench/fleet.py"), "up", "-n", str(N_HOSTS), "--name", PREFIX,
                    "--ip-base", "180", "--state", str(inventory_src)], check=True, env=env)
    pdd = base / "pdd"
    for sub in ("env", "inventory", "project", "collections/ansible_collections/owlat"):
        (pdd / sub).mkdir(parents=True)
    project = pdd / "project"
    project_files(project)
    # The collection comes from the synced project (AWX installs collections/requirements.yml the same way).
    shutil.copytree(project, pdd / "collections/ansible_collections/owlat/selfhost", symlinks=True)
    make_read_only(project)

    # Inventory as AWX writes it: hosts and their variables, no controller paths (the key comes from the
    # machine credential through ssh-agent).
    inv = yaml.safe_load((inventory_src / "inventory.yml").read_text())
    inv["all"]["vars"].pop("ansible_ssh_private_key_file")
    inv["all"]["vars"].pop("owlat_docker_registries")  # from the registry credential below
    (pdd / "inventory/hosts.yml").write_text(yaml.safe_dump(inv))
    hosts = sorted(inv["all"]["children"]["owlat_hosts"]["hosts"])
    assert len(hosts) == N_HOSTS

    key = LAB_STATE / "id_ed25519"
    (pdd / "env/ssh_key").write_text(key.read_text())
    (pdd / "env/settings").write_text(yaml.safe_dump({"job_timeout": 3600, "idle_timeout": 900,
                                                      "pexpect_timeout": 10}))
    (pdd / "env/envvars").write_text(yaml.safe_dump({
        "ANSIBLE_COLLECTIONS_PATH": str(pdd / "collections"),
        "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "OWLAT_STATUS_JSON": str(base / "owlat-status.json"),
        "PATH": "%s:%s" % (VENV_BIN, os.environ["PATH"]),
    }))
    secrets = {
        "registry": (LAB_STATE / "registry-password").read_text().strip(),
        "backup": "runner-" + os.urandom(12).hex(),
    }
    credentials = {}
    credentials.update(inject("owlat_registry.yml", {
        "registry": "registry.owlat.lab:5000", "username": "lab", "password": secrets["registry"],
        "ca_cert": (LAB_STATE / "pki/ca.crt").read_text()}))
    credentials.update(inject("owlat_backup.yml", {
        "repository": "/var/backups/owlat-runner", "password": secrets["backup"]}))

    def run(playbook, survey=None, ident=None):
        extravars = dict(credentials, **(survey or {}))
        (pdd / "env/extravars").write_text(yaml.safe_dump(extravars))
        ident = ident or pathlib.Path(playbook).stem  # a job run again gets its own artifacts
        result = ansible_runner.run(private_data_dir=str(pdd), playbook=playbook, ident=ident, quiet=True,
                                    rotate_artifacts=0)
        return Job(result, pdd / "artifacts" / ident, hosts, secrets)

    run.project = project
    run.status_json = base / "owlat-status.json"
    yield run
    if not KEEP:
        subprocess.run([sys.executable, str(ROOT / "bench/fleet.py"), "down", "--name", PREFIX], env=env, check=False)
        for p in pdd.rglob("*"):
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | 0o200)


class Job:
    def __init__(self, result, artifacts, hosts, secrets):
        self.result = result
        self.artifacts = artifacts
        self.hosts = hosts
        self.secrets = secrets
        self.events = list(result.events)
        self.stdout = (artifacts / "stdout").read_text()

    def explain(self):
        failed = [e for e in self.events if e["event"] in ("runner_on_failed", "runner_on_unreachable")]
        return "status=%s rc=%s\n%s" % (self.result.status, self.result.rc, "\n".join(
            "%s %s: %s" % (e["event"], e["event_data"].get("host"), json.dumps(e["event_data"].get("res", {}))[:600])
            for e in failed) or self.stdout[-3000:])

    def assert_every_host_ok(self):
        assert self.result.status == "successful" and self.result.rc == 0, self.explain()
        assert (self.artifacts / "status").read_text().strip() == "successful"
        assert any((self.artifacts / "job_events").glob("*.json"))
        ok_hosts = {e["event_data"]["host"] for e in self.events if e["event"] == "runner_on_ok"}
        assert set(self.hosts) <= ok_hosts, "hosts without a runner_on_ok event: %s" % (set(self.hosts) - ok_hosts)
        failed = [e for e in self.events if e["event"] == "runner_on_failed" and not e["event_data"].get("ignore_errors")]
        assert not failed, self.explain()
        (stats,) = [e["event_data"] for e in self.events if e["event"] == "playbook_on_stats"]
        for host in self.hosts:
            assert host in stats["ok"], "%s missing from the recap" % host
            assert host not in stats["failures"] and host not in stats["dark"], self.explain()
        return stats

    def assert_no_secret_in_output(self):
        events_text = "".join(p.read_text() for p in (self.artifacts / "job_events").glob("*.json"))
        for name, value in self.secrets.items():
            assert value not in self.stdout, "the %s secret is in the job output" % name
            assert value not in events_text, "the %s secret is in the job events" % name


# ------------------------------------------------------------------------------------ the jobs


def catalog_releases(project):
    data = yaml.safe_load((project / "roles/stack/vars/main.yml").read_text())
    return list(data["owlat_stack_release_catalog"])


def test_site_then_upgrade_then_status_as_awx_jobs(job_dir):
    releases = catalog_releases(job_dir.project)
    # The first deploy is on the release before the newest, so the upgrade job has something to do.
    first = {"owlat_stack_release": releases[-2]} if len(releases) > 1 and (job_dir.project / "playbooks/upgrade.yml").exists() else {}
    site = job_dir("playbooks/site.yml", dict({"owlat_target": "owlat_hosts"}, **first))
    stats = site.assert_every_host_ok()
    assert all(stats["changed"].get(h, 0) > 0 for h in site.hosts), "a first deploy changes every host"
    site.assert_no_secret_in_output()

    backed_up = False
    expected_release = first.get("owlat_stack_release") or yaml.safe_load(
        (job_dir.project / "roles/stack/defaults/main.yml").read_text())["owlat_stack_release"]
    # upgrade.yml is part of the job when the collection has it (with the pre-upgrade backup to the repository
    # of the backup credential).
    if (job_dir.project / "playbooks/upgrade.yml").exists():
        target = catalog_releases(job_dir.project)[-1]
        upgrade = job_dir("playbooks/upgrade.yml", {
            "owlat_target": "owlat_hosts", "owlat_upgrade_release": target,
            "owlat_upgrade_acknowledge": catalog_releases(job_dir.project),
        })
        upgrade.assert_every_host_ok()
        upgrade.assert_no_secret_in_output()
        expected_release = target
        backed_up = True

    # status.yml reports Docker's own health verdicts: right after an upgrade recreated the containers a check may
    # still say "starting" (Convex's runs every 15 s). A read-only job is run again until every verdict is in.
    deadline, attempt = time.time() + 120, 0
    while True:
        attempt += 1
        status = job_dir("playbooks/status.yml", {"owlat_target": "owlat_hosts"},
                         ident="status" if attempt == 1 else f"status-{attempt}")
        stats = status.assert_every_host_ok()
        assert not any(stats["changed"].values()), "status.yml changed something: %s" % stats["changed"]
        # The report reached the job's artifacts (set_stats), one row per host, as AWX shows and passes them on.
        report = stats["artifact_data"]["owlat_status"]
        if time.time() > deadline or not any("starting" in r["services"] for r in report["rows"]):
            break
        time.sleep(10)
    assert sorted(r["host"] for r in report["rows"]) == sorted(status.hosts)
    for row in report["rows"]:
        assert row["services"].startswith("convex ok, web ok, mta ok, redis ok, caddy ok"), row
        assert row["release"] == expected_release, row
        # The pre-upgrade backup's status file (backup role contract) is what the report reads.
        assert not backed_up or row["backup"] not in ("never", "unreadable"), row
    # ... and the JSON file, written outside the read-only project directory.
    written = json.loads(job_dir.status_json.read_text())
    assert sorted(r["host"] for r in written["rows"]) == sorted(status.hosts)
