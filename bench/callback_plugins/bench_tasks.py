# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""Benchmark helper (not part of the collection): per task, which hosts ran a module on the host, which
changed, which skipped, and the task's wall time. Written as JSON to $OWLAT_BENCH_TASKS_FILE at the end.
Host-side means what owlat.selfhost.module_runs counts: not a controller-only action, not delegated."""

from __future__ import annotations

DOCUMENTATION = r"""
name: bench_tasks
type: aggregate
short_description: Per-task host-side module runs and wall time, for bench/bench.py
description:
  - Writes one entry per task to E(OWLAT_BENCH_TASKS_FILE).
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
    CALLBACK_NAME = "bench_tasks"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.tasks = []
        self.current = None

    def _start(self, task):
        self._close()
        action = task.action.rsplit(".", 1)[-1]
        self.current = dict(
            name=task.get_name(), action=task.action, started=time.time(),
            host_side=action not in CONTROLLER_ONLY and not task.delegate_to,
            ran=[], changed=[], skipped=[], failed=[],
        )

    def _close(self):
        if self.current is not None:
            self.current["seconds"] = round(time.time() - self.current.pop("started"), 2)
            self.tasks.append(self.current)
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task)

    def _host(self, result, bucket):
        if self.current is not None:
            self.current[bucket].append(result._host.get_name())

    def v2_runner_on_ok(self, result):
        self._host(result, "ran")
        if result._result.get("changed"):
            self._host(result, "changed")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._host(result, "ran")
        self._host(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._host(result, "skipped")

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get("OWLAT_BENCH_TASKS_FILE")
        if path:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(self.tasks, fh, indent=1)
