# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: module_runs
type: aggregate
short_description: Count host-side module runs per host
version_added: 0.1.0
description:
  - At the end of a run, prints per host how many tasks executed a module on the host,
    how many of them changed something, and the wall time of the run.
  - Controller-side actions (debug, assert, set_fact, include/import, meta, ...) and skipped
    tasks are not counted, since they cost the host nothing.
  - Set E(OWLAT_MODULE_RUNS_FILE) to also write the counts as JSON.
requirements:
  - enable in ansible.cfg (callbacks_enabled = owlat.selfhost.module_runs)
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

CONTROLLER_ONLY = frozenset(
    (
        "add_host", "assert", "debug", "fail", "group_by", "include_role", "include_tasks",
        "include_vars", "import_role", "import_tasks", "meta", "pause", "set_fact", "set_stats",
        "validate_argument_spec",
    )
)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "owlat.selfhost.module_runs"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.runs = {}
        self.started = time.time()

    def _count(self, result, changed=False):
        action = result._task.action.rsplit(".", 1)[-1]
        if action in CONTROLLER_ONLY or result._task.delegate_to:
            return
        host = result._host.get_name()
        entry = self.runs.setdefault(host, {"runs": 0, "changed": 0})
        items = result._result.get("results")
        # A loop runs the module once per item that was not skipped.
        entry["runs"] += sum(1 for i in items if not i.get("skipped")) if isinstance(items, list) else 1
        if changed:
            entry["changed"] += 1

    def v2_runner_on_ok(self, result):
        self._count(result, result._result.get("changed", False))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result)

    def v2_playbook_on_stats(self, stats):
        if not self.runs:
            return
        elapsed = time.time() - self.started
        self._display.banner("MODULE RUNS PER HOST")
        for host in sorted(self.runs):
            entry = self.runs[host]
            self._display.display("%-28s runs=%-4d changed=%d" % (host, entry["runs"], entry["changed"]))
        self._display.display("wall time: %.1f s" % elapsed)
        path = os.environ.get("OWLAT_MODULE_RUNS_FILE")
        if path:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump({"hosts": self.runs, "wall_seconds": round(elapsed, 2)}, fh, indent=1)
