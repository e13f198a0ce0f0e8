"""Fill the tables of docs/bench.md from bench/results/*.json (all runs; the no-op task list of the latest run
of the largest N next to the first N=3 run):  .venv/bin/python bench/report.py"""
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import bench  # noqa: E402

os.chdir(ROOT)
files = sorted(glob.glob("bench/results/*.json"))
results = [json.load(open(f)) for f in files]
rows = [bench.markdown(r) for r in results]
latest = {}
for r in results:
    latest[r["n"]] = r


def tasks(r):
    return {t["name"]: t for t in (r["noop"].get("tasks") or []) if t["host_side"] and t["ran"]}


# The no-op path now (the latest run of the largest N) next to the first N=3 run (before the cuts).
now_r = latest[max(latest)]
before_r = next(r for r in results if r["n"] == 3)
t_now, t_before = tasks(now_r), tasks(before_r)
order = sorted(set(t_now) | set(t_before), key=lambda k: (-t_now[k]["seconds"] if k in t_now else 0,
                                                          -t_before.get(k, {"seconds": 0})["seconds"]))
noop = ["| %s | %s | %s | `%s` |" % (("%.1f" % t_now[k]["seconds"]) if k in t_now else "-",
                                     ("%.1f" % t_before[k]["seconds"]) if k in t_before else "-",
                                     k.replace("|", "\\|"), (t_now.get(k) or t_before[k])["action"]) for k in order]
s = open("docs/bench.md").read()


def put(tag, lines):
    global s
    a = s.index("<!-- %s -->\n" % tag) + len("<!-- %s -->\n" % tag)
    b = s.index("<!-- /%s -->" % tag)
    block = s[a:b].splitlines()[:2]  # header + separator
    s = s[:a] + "\n".join(block + lines) + "\n" + s[b:]


put("results", rows)
put("noop", noop)
open("docs/bench.md", "w").write(s)
