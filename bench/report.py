"""Fill the tables of docs/bench.md from bench/results/*.json (all runs; the no-op task list from the
latest N=3 and N=1 runs):  .venv/bin/python bench/report.py"""
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


t3, t1 = tasks(latest[3]), tasks(latest[1])
order = sorted(t3, key=lambda k: -t3[k]["seconds"])
noop = ["| %.1f | %s | %s | `%s` |" % (t3[k]["seconds"], ("%.1f" % t1[k]["seconds"]) if k in t1 else "-",
                                       k.replace("|", "\\|"), t3[k]["action"]) for k in order]
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
