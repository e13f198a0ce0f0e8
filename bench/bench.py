#!/usr/bin/env python3
"""Fleet benchmark (not a timed test): how the collection behaves as the fleet grows.

For each N (default 1, 3, 10), on N fresh private lab hosts (bench/fleet.py, prefix owlat-bench-host):
  ping floor   `ansible -m ping` on the same hosts (second call: SSH connections warm, like the re-run's), once on
               the fresh hosts and once on the deployed ones right before the no-op (the floor of the ratio)
  first deploy site.yml on fresh hosts (owlat-lab/host-docker: docker.io preinstalled, the docker role
               configures it)
  no-op        site.yml again: wall time, host-side module runs per host (owlat.selfhost.module_runs), changes
  ratio        no-op / ping floor (target <= 4 on 10 hosts)
  upgrade      upgrade.yml to the newest catalog release, when the collection has it
  status       status.yml (read-only report)
  mitogen      ping, no-op and status again with Mitogen's strategy (mitogen_linear), when it loads
and the per-task list of the no-op run (bench/callback_plugins/bench_tasks.py): which tasks still run a module
on the hosts, and for how long. The machine's load average is recorded around every measurement: other
work on the machine makes timings noisy.

  .venv/bin/python bench/bench.py [-n 1 3 10] [--no-mitogen] [--no-upgrade] [--upgrade-batch 50%] [--keep]
                                  [--out bench/results]
Results: bench/results/<UTC time>-n<N>.json and a Markdown row per N on stdout (docs/bench.md).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = pathlib.Path(sys.executable).parent
sys.path.insert(0, str(HERE))
import fleet  # noqa: E402

PREFIX = "owlat-bench-host"
RECAP_RE = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def load():
    return round(os.getloadavg()[0], 2)


def settle(limit=300):
    """Wait (at most `limit` s) until the 1-minute load average is below the number of cores + 1."""
    started, target = time.time(), (os.cpu_count() or 1) + 1
    while load() > target and time.time() - started < limit:
        time.sleep(5)
    return dict(seconds=round(time.time() - started, 1), load=load(), target=target)


def mitogen_strategy_dir():
    try:
        import ansible_mitogen  # noqa: F401
    except ImportError:
        return None
    return str(pathlib.Path(ansible_mitogen.__file__).parent / "plugins" / "strategy")


def run(cmd, env, log, timeout=3600):
    """(seconds, rc, output) of one ansible command, with the load average before and after."""
    before = load()
    started = time.time()
    try:
        res = subprocess.run(cmd, env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=timeout)
        rc, out = res.returncode, res.stdout
    except subprocess.TimeoutExpired as exc:
        rc, out = -1, (exc.stdout or "") + "\nTIMEOUT"
    seconds = round(time.time() - started, 1)
    log.write("$ %s\n%s\n[%.1f s, rc %d, load %s -> %s]\n\n" % (" ".join(cmd), out, seconds, rc, before, load()))
    log.flush()
    return dict(seconds=seconds, rc=rc, load_before=before, load_after=load()), out


def recap(out):
    hosts = {m.group(1): dict(ok=int(m.group(2)), changed=int(m.group(3)), unreachable=int(m.group(4)),
                              failed=int(m.group(5))) for m in RECAP_RE.finditer(out)}
    return hosts


def playbook(name, inventory, env, log, workdir, label, extra=()):
    runs_file = workdir / ("%s-runs.json" % label)
    tasks_file = workdir / ("%s-tasks.json" % label)
    env = dict(env, OWLAT_MODULE_RUNS_FILE=str(runs_file), OWLAT_BENCH_TASKS_FILE=str(tasks_file))
    # The playbooks of the collection under test (with --head: the snapshot's, not the checkout's).
    playbooks = pathlib.Path(env["ANSIBLE_COLLECTIONS_PATH"]) / "ansible_collections/owlat/selfhost/playbooks"
    result, out = run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbooks / name), *extra],
                      env, log)
    result["recap"] = {h: r for h, r in recap(out).items() if h != "localhost"}
    result["ok"] = result["rc"] == 0 and all(r["failed"] == 0 and r["unreachable"] == 0
                                             for r in result["recap"].values())
    if runs_file.exists():
        runs = json.loads(runs_file.read_text())["hosts"]
        per_host = [v["runs"] for h, v in runs.items() if h != "localhost"]
        result["module_runs_per_host"] = round(sum(per_host) / len(per_host), 1) if per_host else 0
        result["module_runs"] = runs
    if tasks_file.exists():
        result["tasks"] = json.loads(tasks_file.read_text())
    result["changed"] = sum(r["changed"] for r in result["recap"].values())
    return result


def ping(inventory, env, log):
    cmd = [str(BIN / "ansible"), "-i", str(inventory), "owlat_hosts", "-m", "ansible.builtin.ping"]
    run(cmd, env, log)  # opens the SSH control connections
    result, _out = run(cmd, env, log)
    return result


def bench(n, args, log):
    workdir = pathlib.Path(args.out) / "work" / ("n%d" % n)
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PATH="%s:%s" % (BIN, os.environ["PATH"]),
               ANSIBLE_CALLBACK_PLUGINS=str(HERE / "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="owlat.selfhost.module_runs,bench_tasks",
               ANSIBLE_COLLECTIONS_PATH=args.collections)
    fleet.down(PREFIX)  # a first deploy needs fresh hosts
    inventory = fleet.up(n, PREFIX, str(workdir), ip_base=200)
    out = dict(n=n, machine=machine(), started=now(), collection=collection_commit(args.collections))
    out["ping_fresh"] = ping(inventory, env, log)
    out["first_deploy"] = playbook("site.yml", inventory, env, log, workdir, "first")
    # All N hosts share this machine's cores: let the new stacks finish starting (ClamAV loads its signatures,
    # Convex warms up) before measuring, and take the floor on the same hosts in the same state as the no-op.
    out["settle"] = settle()
    out["ping"] = ping(inventory, env, log)
    out["noop"] = playbook("site.yml", inventory, env, log, workdir, "noop")
    if out["ping"]["seconds"]:
        out["noop_over_ping"] = round(out["noop"]["seconds"] / out["ping"]["seconds"], 1)
    out["status"] = playbook("status.yml", inventory, env, log, workdir, "status")
    strategy = mitogen_strategy_dir() if not args.no_mitogen else None
    if strategy:
        # Mitogen opens its connections within ansible's `timeout` (10 s by default): on a loaded machine the
        # first connection to several hosts at once takes longer.
        menv = dict(env, ANSIBLE_STRATEGY_PLUGINS=strategy, ANSIBLE_STRATEGY="mitogen_linear",
                    ANSIBLE_TIMEOUT=os.environ.get("ANSIBLE_TIMEOUT", "60"))
        out["mitogen"] = dict(ping=ping(inventory, menv, log),
                              noop=playbook("site.yml", inventory, menv, log, workdir, "mitogen-noop"),
                              status=playbook("status.yml", inventory, menv, log, workdir, "mitogen-status"))
        if out["mitogen"]["ping"]["seconds"] and out["mitogen"]["noop"]["ok"]:
            out["mitogen"]["noop_over_ping"] = round(out["mitogen"]["noop"]["seconds"] / out["mitogen"]["ping"]["seconds"], 1)
    upgrade = pathlib.Path(args.collections) / "ansible_collections/owlat/selfhost/playbooks/upgrade.yml"
    if upgrade.exists() and not args.no_upgrade:
        releases = list(catalog(args.collections))
        upgrade_vars = {"owlat_upgrade_release": releases[-1], "owlat_upgrade_acknowledge": releases,
                        "owlat_upgrade_backup": False}
        if args.upgrade_batch:
            upgrade_vars["owlat_upgrade_batch"] = args.upgrade_batch
        extra = ["-e", json.dumps(upgrade_vars)]
        out["upgrade"] = playbook("upgrade.yml", inventory, env, log, workdir, "upgrade", extra)
        out["upgrade"]["to"] = releases[-1]
        out["upgrade"]["batch"] = args.upgrade_batch or "25% (default)"
    out["finished"] = now()
    if not args.keep:
        fleet.down(PREFIX)
    return out


def snapshot_head(dest):
    """The last commit as a collection tree (other work in progress in the checkout does not leak in)."""
    import shutil
    import tarfile
    import io

    target = dest / "ansible_collections/owlat/selfhost"
    shutil.rmtree(dest, ignore_errors=True)
    target.mkdir(parents=True)
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(target, filter="data")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    (target / ".bench-commit").write_text(commit + "\n")
    return str(dest)


def catalog(collections):
    import yaml

    path = pathlib.Path(collections) / "ansible_collections/owlat/selfhost/roles/stack/vars/main.yml"
    return yaml.safe_load(path.read_text())["owlat_stack_release_catalog"]


def collection_commit(collections):
    path = (pathlib.Path(collections) / "ansible_collections/owlat/selfhost").resolve()
    marker = path / ".bench-commit"
    if marker.exists():
        return marker.read_text().strip()
    res = subprocess.run(["git", "-C", str(path), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else "?"


def machine():
    mem = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // (1024 * 1024)
    return "%d cores, %d GiB" % (os.cpu_count(), mem + 1)


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cell(result, key="seconds"):
    if not result:
        return "-"
    value = result.get(key)
    mark = "" if result.get("ok", result.get("rc") == 0) else " (failed)"
    return "%s%s" % (value, mark)


def markdown(r):
    m = r.get("mitogen") or {}
    return "| %d | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s | %s–%s |" % (
        r["n"], r["started"][:16].replace("T", " "), cell(r["first_deploy"]), cell(r["noop"]),
        cell(r.get("upgrade")),
        ("%s / %s" % (cell(r["ping_fresh"]), cell(r["ping"]))) if "ping_fresh" in r else cell(r["ping"]),
        r.get("noop_over_ping", "-"),
        r["first_deploy"].get("module_runs_per_host", "-"), r["noop"].get("module_runs_per_host", "-"),
        cell(r["status"]), cell(m.get("ping")), cell(m.get("noop")),
        m.get("noop_over_ping", "-") if (m.get("noop") or {}).get("ok") else "-",
        min(x["load_before"] for x in measurements(r)), max(x["load_after"] for x in measurements(r)))


def measurements(r):
    out = [r["ping"], r["first_deploy"], r["noop"], r["status"]] + ([r["upgrade"]] if r.get("upgrade") else [])
    m = r.get("mitogen") or {}
    return out + [m[k] for k in ("ping", "noop", "status") if k in m]


def noop_tasks(r, label="noop"):
    """Tasks of the no-op run that ran a module on the hosts, slowest first."""
    tasks = (r.get(label) or {}).get("tasks") or []
    return sorted((t for t in tasks if t["host_side"] and t["ran"]), key=lambda t: -t["seconds"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, nargs="+", default=[1, 3, 10])
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--collections", default=None,
                   help="collections path holding owlat.selfhost (default: the checkout via .collections)")
    p.add_argument("--head", action="store_true",
                   help="benchmark the last commit (a snapshot), not the checkout with its uncommitted changes")
    p.add_argument("--no-mitogen", action="store_true")
    p.add_argument("--no-upgrade", action="store_true")
    p.add_argument("--upgrade-batch", default=None,
                   help="owlat_upgrade_batch for the upgrade (after the canary host), e.g. 50%%; default: the role's 25%%")
    p.add_argument("--keep", action="store_true", help="keep the hosts of the last N")
    args = p.parse_args()
    outdir = pathlib.Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    if args.head:
        args.collections = snapshot_head(outdir / "work" / "collection")
    elif not args.collections:
        args.collections = os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(ROOT / ".collections"))
    rows = []
    for n in args.n:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        with open(outdir / ("%s-n%d.log" % (stamp, n)), "w") as log:
            result = bench(n, args, log)
        (outdir / ("%s-n%d.json" % (stamp, n))).write_text(json.dumps(result, indent=1))
        rows.append(markdown(result))
        print("\n".join(["N=%d done: %s" % (n, outdir / ("%s-n%d.json" % (stamp, n)))]), flush=True)
        print("no-op tasks with host-side module runs (slowest first):")
        for t in noop_tasks(result):
            print("  %5.1f s  %-60s %s  on %d host(s)%s" % (t["seconds"], t["name"][:60], t["action"], len(t["ran"]),
                                                          " CHANGED" if t["changed"] else ""))
    print("\n| N | started (UTC) | first deploy s | no-op s | upgrade s | ping s | no-op/ping | module runs/host "
          "(first / no-op) | status s | mitogen ping s | mitogen no-op s | mitogen no-op/ping | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
