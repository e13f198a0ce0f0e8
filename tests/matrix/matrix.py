#!/usr/bin/env python3
"""The controller test matrix (standard library only; any Python 3.8+ runs it).

  matrix.py venv LEG...             build each leg's venv from its pins (rebuilt when the pins or Python change)
  matrix.py run LEG STEP...         run sanity / unit in LEG's venv, record each step
  matrix.py exec LEG STEP -- CMD    run CMD (Molecule, lint, runner, ...) and record it as STEP of LEG
  matrix.py quick LEG...            venv + sanity + unit for each leg, one after the other (`make matrix`)
  matrix.py table [--write] [--check] [--complete]
                                    README support table from legs.json + the recorded results: --write
                                    rewrites it, --check fails when the README differs, --complete fails
                                    unless every declared step of every leg passed in the results
  matrix.py show                    the results as a table with times

Legs are declared in tests/matrix/legs.json. Results: tests/matrix/results/<leg>/<step>.json (git-ignored): the
versions found in the venv (Python, ansible-core, community.docker) and per step pass/fail, seconds, the
test count when the step's runner reports one. A step that runs no test fails (pytest's exit code 5 too).
Environment: MATRIX_LEGS (legs file), MATRIX_RESULTS (results directory), MATRIX_VENV_<LEG> (another venv
for a leg, e.g. MATRIX_VENV_core_2_21=.venvs/core-2.21), PYENV_ROOT (/root/.pyenv).
"""

import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LEGS_FILE = os.environ.get("MATRIX_LEGS", os.path.join(ROOT, "tests/matrix/legs.json"))
RESULTS = os.environ.get("MATRIX_RESULTS", os.path.join(ROOT, "tests/matrix/results"))
README = os.path.join(ROOT, "README.md")
BEGIN, END = "<!-- matrix:begin (tests/matrix/matrix.py table --write) -->", "<!-- matrix:end -->"
UNIT_TESTS = ["tests/unit", "tests/doubles", "tests/cli", "tests/runner/test_awx_files.py"]


def log(msg):
    print("matrix: %s" % msg, flush=True)


def load_legs():
    with open(LEGS_FILE) as f:
        return json.load(f)["legs"]


def leg_by_name(name):
    for leg in load_legs():
        if leg["name"] == name:
            return leg
    sys.exit("matrix: no leg %r in %s" % (name, LEGS_FILE))


def venv_dir(leg):
    override = os.environ.get("MATRIX_VENV_" + re.sub(r"\W", "_", leg["name"]))
    return os.path.join(ROOT, override or leg["venv"])


def find_python(version):
    """A CPython major.minor: pyenv's newest patch release of it, else pythonX.Y on PATH."""
    root = os.environ.get("PYENV_ROOT", "/root/.pyenv")
    found = []
    for path in glob.glob(os.path.join(root, "versions", version + ".*", "bin", "python" + version)):
        patch = path.split(os.sep)[-3].split(".")[2:3]
        if patch and patch[0].isdigit():
            found.append((int(patch[0]), path))
    if found:
        return max(found)[1]
    path = shutil.which("python" + version)
    if path:
        return path
    sys.exit("matrix: Python %s not found (pyenv versions in %s, or python%s on PATH)" % (version, root, version))


def stamp_of(leg, python):
    h = hashlib.sha256()
    h.update(("%s\n%s\n" % (leg["python"], python)).encode())
    for name in leg.get("requirements", []) + leg.get("nodeps", []):
        with open(os.path.join(ROOT, name), "rb") as f:
            h.update(name.encode() + b"\n" + f.read())
    return h.hexdigest()


def pip_run(cmd):
    """pip, without the lines about configured-but-absent local indexes."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout.splitlines():
        if "it is neither a file nor a directory" not in line:
            print(line, flush=True)
    if proc.returncode:
        sys.exit("matrix: %s failed (rc %d)" % (" ".join(cmd), proc.returncode))


def build_venv(leg):
    venv = venv_dir(leg)
    python = find_python(leg["python"])
    stamp = stamp_of(leg, python)
    stamp_file = os.path.join(venv, ".matrix-stamp")
    os.makedirs(os.path.dirname(venv) or ".", exist_ok=True)
    # make test builds the legs' venvs where they are first needed (the background matrix, a lab lane): one at a time.
    with open(venv.rstrip("/") + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(stamp_file) and open(stamp_file).read().strip() == stamp:
            return venv
        return make_venv(leg, venv, python, stamp, stamp_file)


def make_venv(leg, venv, python, stamp, stamp_file):
    log("%s: building %s (Python %s: %s)" % (leg["name"], os.path.relpath(venv, ROOT), leg["python"], python))
    start = time.time()
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", venv], check=True)
    # --no-compile: byte-compiling the ~40k files of the `ansible` package is 4/5 of a venv's build CPU (49 of 62 s for
    # core-2.18); Python compiles what is imported, once, on first use.
    pip = [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q", "--no-compile", "--disable-pip-version-check"]
    pip_run(pip + ["--upgrade", "pip"])
    pip_run(pip + [a for r in leg.get("requirements", []) for a in ("-r", os.path.join(ROOT, r))])
    for r in leg.get("nodeps", []):
        pip_run(pip + ["--no-deps", "-r", os.path.join(ROOT, r)])
    with open(stamp_file, "w") as f:
        f.write(stamp + "\n")
    log("%s: venv ready in %d s" % (leg["name"], time.time() - start))
    return venv


def versions(venv):
    """Python, ansible-core and community.docker as the venv's ansible-core sees them."""
    code = r"""
import json, os, sys, glob
out = {"python": "%d.%d.%d" % sys.version_info[:3]}
try:
    from ansible.release import __version__
    out["ansible_core"] = __version__
except ImportError:
    out["ansible_core"] = None
out["community_docker"] = None
for base in sys.path:
    m = os.path.join(base, "ansible_collections", "community", "docker", "MANIFEST.json")
    if os.path.exists(m):
        out["community_docker"] = json.load(open(m))["collection_info"]["version"]
        break
try:
    import importlib.metadata as md
    out["ansible"] = md.version("ansible")
except Exception:
    out["ansible"] = None
print(json.dumps(out))
"""
    res = subprocess.run([os.path.join(venv, "bin", "python"), "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(res.stdout)


def step_path(leg_name, step):
    return os.path.join(RESULTS, leg_name, step.replace(":", "-") + ".json")


def load_results(leg_name):
    """One leg's results: the versions its venv had and every recorded step. Each step has its own file
    (results/<leg>/<step>.json), so steps of one leg may run at the same time (the matrix in the background,
    Molecule in the foreground)."""
    data = {"leg": leg_name, "steps": {}}
    found = False
    for path in sorted(glob.glob(os.path.join(RESULTS, leg_name, "*.json"))):
        try:
            with open(path) as f:
                one = json.load(f)
        except (OSError, ValueError):
            continue
        found = True
        data["steps"][one.pop("step")] = one.pop("outcome")
        data.update(one)
    return data if found else None


def write_step(leg_name, step, data):
    path = step_path(leg_name, step)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(path + ".tmp", path)


def record(leg, step, ok, seconds, detail):
    data = {"leg": leg["name"], "step": step}
    try:
        data.update(versions(venv_dir(leg)))
    except (OSError, subprocess.CalledProcessError, ValueError):
        pass
    data["outcome"] = {"result": "pass" if ok else "fail", "seconds": round(seconds, 1),
                       "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **detail}
    write_step(leg["name"], step, data)


PYTEST_SUMMARY = re.compile(r"^=*\s*(?P<body>(?:\d+ \w+(?:, )?)+)(?: in [\d.]+s.*)?\s*=*$")


def counts_of(output):
    """pytest's closing line -> {'passed': N, ...}; {} when there is none."""
    for line in reversed(output.splitlines()):
        m = PYTEST_SUMMARY.match(line.strip())
        if m:
            return {k: int(n) for n, k in re.findall(r"(\d+) (\w+)", m.group("body"))}
    return {}


WHY_LINE = re.compile(r"^(FAILED|ERROR)\b|^E +\S|fatal: \[|failed=[1-9]|^CRITICAL|^lab: |Error\b|^make: \*\*\*|\bFAIL\b|msg: ")


def failure_excerpt(out, keep=30, tail=12):
    """Why a step failed, for the closing summary (a CI log is often read from its end): the lines that name
    failures (pytest, Ansible, the lab), then the output's last lines; each shortened, none twice."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)  # Molecule and Ansible colour their output
    lines = [line.rstrip()[:300] for line in plain.splitlines() if line.strip()]
    picked = [line for line in lines if WHY_LINE.search(line)][-keep:] + lines[-tail:]
    return list(dict.fromkeys(picked))


def execute(leg, step, cmd, env=None, pytest=False):
    """Run cmd (output streamed and kept), record the step. A pytest run that passes no test fails."""
    log("%s %s: %s" % (leg["name"], step, " ".join(cmd)))
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    rc = proc.wait()
    seconds = time.time() - start
    out = "".join(lines)
    detail = {"rc": rc}
    ok = rc == 0
    if pytest:
        counts = counts_of(out)
        detail["tests"] = counts
        if not counts.get("passed"):
            ok = False
            detail["why"] = "no test passed (pytest rc %d)" % rc
    elif step == "sanity":
        ran = len(re.findall(r"^Running sanity test ['\"]", out, re.M))
        detail["tests"] = {"sanity_tests": ran}
        if ran == 0:
            ok = False
            detail["why"] = "ansible-test ran no sanity test"
    if not ok:
        detail["excerpt"] = failure_excerpt(out)
    record(leg, step, ok, seconds, detail)
    log("%s %s: %s in %d s" % (leg["name"], step, "pass" if ok else "FAIL", seconds))
    return ok


def leg_env(leg):
    venv = venv_dir(leg)
    env = dict(os.environ)
    env["PATH"] = os.path.join(venv, "bin") + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = venv
    env.pop("PYTHONPATH", None)
    return env


def run_step(leg, step):
    venv = venv_dir(leg)
    env = leg_env(leg)
    if step == "sanity":
        env["OWLAT_SANITY_VENV"] = venv
        env["OWLAT_SANITY_WORK"] = os.path.join(os.environ.get("TMPDIR", "/tmp"), "owlat-sanity-" + leg["name"])
        return execute(leg, step, ["bash", "tests/sanity.sh"], env=env)
    if step == "unit":
        # The tree's own conftest files import the collection through ANSIBLE_COLLECTIONS_PATH (.collections).
        # compat_pytest gives the in-process module runner of tests/unit its ansible-core 2.19+ hooks on 2.17/2.18.
        env["PYTHONPATH"] = os.path.join(ROOT, "tests/matrix")
        cmd = [os.path.join(venv, "bin", "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "-p", "compat_pytest"] + leg.get("unit_tests", UNIT_TESTS) + leg.get("unit_args", [])
        return execute(leg, step, cmd, env=env, pytest=True)
    sys.exit("matrix: step %r is run with `matrix.py exec` (Makefile)" % step)


def cmd_venv(names):
    for name in names:
        build_venv(leg_by_name(name))


def cmd_run(name, steps):
    leg = leg_by_name(name)
    build_venv(leg)
    ok = True
    for step in steps:
        ok = run_step(leg, step) and ok
    return ok


def cmd_quick(names):
    ok = True
    for name in names or [leg["name"] for leg in load_legs()]:
        leg = leg_by_name(name)
        build_venv(leg)
        for step in ("sanity", "unit"):
            if step in leg["steps"]:
                ok = run_step(leg, step) and ok
    return ok


def cmd_exec(name, step, cmd):
    """Run a lab step (Molecule, runner, lint) in LEG's venv, watched for the collection's own deprecations:
    the callback owlat.selfhost.deprecation_watch (enabled through ANSIBLE_CALLBACKS_ENABLED by the Makefile)
    appends every deprecation to OWLAT_DEPRECATION_LOG; one marked own fails the step."""
    leg = leg_by_name(name)
    # pytest itself, or a `bash -c` script that ends in it (the lab's steps first): no test passed is a failure.
    pytest = os.path.basename(cmd[0]).startswith(("pytest", "py.test")) or (
        cmd[:2] == ["bash", "-c"] and re.search(r"\bexec pytest\b", cmd[2]) is not None)
    env = leg_env(leg)
    os.makedirs(RESULTS, exist_ok=True)
    dep_log = step_path(leg["name"], step)[:-5] + ".deprecations.jsonl"
    os.makedirs(os.path.dirname(dep_log), exist_ok=True)
    open(dep_log, "w").close()
    env["OWLAT_DEPRECATION_LOG"] = dep_log
    env.setdefault("OWLAT_DEPRECATION_ALLOW", os.path.join(ROOT, "tests/matrix/deprecations-allowed.txt"))
    ok = execute(leg, step, cmd, env=env, pytest=pytest)
    own, seen = own_deprecations(dep_log)
    if own:
        for r in own:
            log("%s %s: deprecation the collection triggers: %s [%s] (%s)" % (
                leg["name"], step, r.get("msg"), r.get("task_path") or r.get("origin") or r.get("caller"), r.get("why")))
        with open(step_path(leg["name"], step)) as f:
            data = json.load(f)
        data["outcome"].update(result="fail", why="%d own deprecation(s)" % len(own),
                               deprecations=[r.get("msg") for r in own])
        write_step(leg["name"], step, data)
        ok = False
    else:
        log("%s %s: no deprecation from the collection (%d from tooling ignored)" % (leg["name"], step, seen))
    return ok


def own_deprecations(path):
    own, seen = [], 0
    try:
        with open(path) as f:
            for line in f:
                if line.strip():
                    seen += 1
                    r = json.loads(line)
                    if r.get("own"):
                        own.append(r)
    except OSError:
        pass
    return own, seen


# ------------------------------------------------------------------------------------------- the table


def describe_steps(steps):
    out, mol = [], [s.split(":", 1)[1] for s in steps if s.startswith("molecule:")]
    names = {"lint": "lint", "sanity": "ansible-test sanity", "unit": "unit tests", "runner": "ansible-runner",
             "ee": "EE build context", "doubles-images": "double images"}
    for s in steps:
        if s in names:
            out.append(names[s])
    if mol:
        out.append("Molecule: " + ", ".join(mol))
    return "; ".join(out)


def minor(version):
    return ".".join(str(version).split(".")[:2]) if version else None


def render_table(legs, complete):
    """The README table. Versions are the ones found in the results (what ran); without results, the
    declared Python and the pins of the requirements files."""
    rows = ["| ansible-core | Python | community.docker | `ansible` package | tested | leg |", "|---|---|---|---|---|---|"]
    problems = []
    for leg in legs:
        res = load_results(leg["name"]) or {}
        core, cd, ans = res.get("ansible_core"), res.get("community_docker"), res.get("ansible")
        py = minor(res.get("python")) or leg["python"]
        if not core:
            pins = pinned(leg)
            core, ans = pins.get("ansible-core"), pins.get("ansible")
            problems.append("%s: no results (run make matrix)" % leg["name"])
        steps = res.get("steps", {})
        for s in leg["steps"]:
            if steps.get(s, {}).get("result") != "pass":
                problems.append("%s: %s %s" % (leg["name"], s, steps.get(s, {}).get("result", "not run")))
        if minor(res.get("python")) and minor(res.get("python")) != leg["python"]:
            problems.append("%s: ran on Python %s, declared %s" % (leg["name"], res["python"], leg["python"]))
        main = " (main line)" if leg.get("main") else (" (oldest)" if leg is legs[0] else "")
        rows.append("| %s | %s | %s | %s | %s | `%s`%s |" % (core or "?", py, cd or "?", ans or "?",
                                                              describe_steps(leg["steps"]), leg["name"], main))
    return "\n".join(rows), problems if complete else []


def pinned(leg):
    pins = {}
    for r in leg.get("requirements", []) + leg.get("nodeps", []):
        for line in open(os.path.join(ROOT, r)):
            m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
            if m:
                pins.setdefault(m.group(1).lower(), m.group(2))
    return pins


def cmd_table(write, check, complete):
    legs = load_legs()
    table, problems = render_table(legs, complete)
    text = open(README).read()
    if BEGIN not in text or END not in text:
        sys.exit("matrix: README.md has no %s ... %s markers" % (BEGIN, END))
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = head + BEGIN + "\n" + table + "\n" + END + tail
    ok = True
    if write and new != text:
        with open(README, "w") as f:
            f.write(new)
        log("README.md support table written")
    elif check and new != text:
        log("README.md support table differs from what the matrix ran (make matrix-table):")
        print(table)
        ok = False
    elif not write and not check:
        print(table)
    for p in problems:
        log("incomplete: " + p)
    return ok and not problems


def cmd_show():
    print("%-10s %-8s %-13s %-17s %-26s %-6s %8s" % ("leg", "Python", "ansible-core", "community.docker",
                                                     "step", "result", "seconds"))
    for leg in load_legs():
        res = load_results(leg["name"]) or {"steps": {}}
        for step in leg["steps"]:
            s = res["steps"].get(step, {})
            print("%-10s %-8s %-13s %-17s %-26s %-6s %8s" % (
                leg["name"], res.get("python", "-"), res.get("ansible_core", "-"), res.get("community_docker", "-"),
                step, s.get("result", "-"), s.get("seconds", "-")))
    for leg in load_legs():
        steps = (load_results(leg["name"]) or {"steps": {}})["steps"]
        for step in leg["steps"]:
            s = steps.get(step, {})
            if s.get("result") == "fail":
                print("\n%s %s failed%s; its lines that say why:" % (
                    leg["name"], step, " (%s)" % s["why"] if s.get("why") else ""))
                for line in s.get("excerpt") or ["(no output kept)"]:
                    print("  | " + line)
    return True


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    cmd, args = argv[0], argv[1:]
    if cmd == "venv":
        cmd_venv(args)
        ok = True
    elif cmd == "run":
        ok = cmd_run(args[0], args[1:])
    elif cmd == "quick":
        ok = cmd_quick(args)
    elif cmd == "exec":
        if "--" not in args or args.index("--") != 2:
            sys.exit("usage: matrix.py exec LEG STEP -- CMD...")
        ok = cmd_exec(args[0], args[1], args[3:])
    elif cmd == "table":
        ok = cmd_table("--write" in args, "--check" in args, "--complete" in args)
    elif cmd == "show":
        ok = cmd_show()
    else:
        sys.exit("matrix: unknown command %r" % cmd)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
