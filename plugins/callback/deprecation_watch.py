# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: deprecation_watch
type: aggregate
short_description: Record deprecation warnings that this collection's own content triggers
version_added: 0.2.0
description:
  - Records every deprecation that ansible-core or a collection (community.docker, ...) raises during a run,
    whether or not C(deprecation_warnings) lets it be shown, with the task it arose in.
  - A deprecation is the collection's own when it names owlat.selfhost, or when the task, or the source position
    ansible-core reports, lies in this collection's roles, playbooks or plugins (not in C(lab/), C(molecule/),
    C(bench/), C(tests/), nor outside the collection, such as Molecule's own create and destroy playbooks).
  - At the end of the run it lists them. With E(OWLAT_DEPRECATION_LOG) set, every deprecation is appended to that
    file as one JSON line (C(own) true or false); C(tests/matrix/matrix.py exec) fails the step when an own one
    was recorded. E(OWLAT_DEPRECATION_ALLOW) names a file of regular expressions (one a line, C(#) comments)
    for messages to let through, each with its reason.
requirements:
  - enable it (callbacks_enabled = owlat.selfhost.deprecation_watch, or ANSIBLE_CALLBACKS_ENABLED)
"""

import inspect
import json
import os
import re
import threading

from ansible.plugins.callback import CallbackBase
from ansible.utils.display import Display

COLLECTION = "owlat.selfhost"
# The collection's root: plugins/callback/<this file> -> ../.. (OWLAT_DEPRECATION_ROOT: another tree, for tests).
ROOT = os.path.realpath(os.environ.get("OWLAT_DEPRECATION_ROOT")
                        or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# Inside the collection but tooling, not its content.
TOOLING = ("lab/", "molecule/", "bench/", "tests/", "extensions/", ".venv", ".ansible/")
ORIGIN = re.compile(r"(?:Origin: )?(/[^\s:]+\.(?:ya?ml|py|j2)):\d+")


def classify(path, root=ROOT, tooling=TOOLING):
    """'own' for a file of the collection's content, 'tooling' for one of its test/lab tooling,
    'foreign' for a file outside the collection, None without a path."""
    if not path:
        return None
    path = os.path.realpath(path.split(":", 1)[0])
    if path != root and not path.startswith(root + os.sep):
        return "foreign"
    rel = os.path.relpath(path, root)
    return "tooling" if rel.startswith(tooling) else "own"


def verdict(record, root=ROOT, allow=()):
    """Is the deprecation the collection's own? record: msg, collection, task_path, origin, caller."""
    msg = record.get("msg") or ""
    for pattern in allow:
        if re.search(pattern, msg):
            return False, "allowed: %s" % pattern
    if (record.get("collection") or "").startswith(COLLECTION):
        return True, "deprecated by %s" % record["collection"]
    for key in ("caller", "origin", "task_path"):
        where = classify(record.get(key), root)
        if where == "own":
            return True, "%s in the collection: %s" % (key, record[key])
        if where in ("tooling", "foreign"):
            return False, "%s outside the collection's content: %s" % (key, record[key])
    return False, "no source (configuration or tooling)"


def load_allow(path):
    if not path or not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip() and not line.lstrip().startswith("#")]


def _summary_fields(summary):
    """(msg, collection, origin) of an ansible-core 2.19+ DeprecationSummary."""
    event = getattr(summary, "event", None)
    msg = getattr(event, "msg", None) or str(summary)
    deprecator = getattr(summary, "deprecator", None)
    collection = getattr(deprecator, "resolved_name", None) if deprecator else None
    origin = None
    context = getattr(event, "formatted_source_context", None)
    if context:
        m = ORIGIN.search(context)
        origin = m.group(1) if m else None
    return msg, collection, origin


def _caller():
    """The innermost Python frame in this collection's plugins/ (a plugin calling a deprecated API)."""
    plugins = os.path.join(ROOT, "plugins") + os.sep
    for frame in inspect.stack(context=0)[2:]:
        name = os.path.realpath(frame.filename)
        if name.startswith(plugins) and not name.endswith(os.sep + "deprecation_watch.py"):
            return "%s:%d" % (name, frame.lineno)
    return None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "owlat.selfhost.deprecation_watch"
    CALLBACK_NEEDS_ENABLED = True

    _active = None  # the instance the Display hooks report to (one per ansible-playbook process)

    def __init__(self):
        super().__init__()
        self.records = []
        self.seen = set()
        self.task_path = None
        self.task_name = None
        self.lock = threading.Lock()
        self.log = os.environ.get("OWLAT_DEPRECATION_LOG")
        self.allow = load_allow(os.environ.get("OWLAT_DEPRECATION_ALLOW"))
        CallbackModule._active = self
        _hook_display()

    # ----------------------------------------------------------------------------- recording

    def note(self, msg, collection=None, origin=None, caller=None):
        key = (msg, collection, origin, self.task_path)
        with self.lock:
            if key in self.seen:
                return
            self.seen.add(key)
            record = {"msg": msg, "collection": collection, "origin": origin, "caller": caller,
                      "task": self.task_name, "task_path": self.task_path}
            own, why = verdict(record, allow=self.allow)
            record.update(own=own, why=why)
            self.records.append(record)
            if self.log:
                with open(self.log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record, sort_keys=True) + "\n")

    def _task(self, task):
        self.task_name = task.get_name()
        self.task_path = task.get_path() or None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task(task)

    def _result(self, result):
        # Module deprecations in the result (ansible-core < 2.19 dicts; 2.19+ also reaches Display._deprecated).
        for dep in (getattr(result, "_result", None) or {}).get("deprecations") or []:
            if isinstance(dep, dict):
                self.note(dep.get("msg", ""), dep.get("collection_name"))
            else:
                self.note(*_summary_fields(dep)[:3])

    def v2_runner_on_ok(self, result):
        self._result(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result)

    def v2_playbook_on_stats(self, stats):
        own = [r for r in self.records if r["own"]]
        if not self.records:
            return
        self._display.banner("DEPRECATIONS")
        for r in self.records:
            self._display.display("%s %s [%s] %s" % ("OWN " if r["own"] else "ignored", r["msg"],
                                                     r["task_path"] or "-", r["why"]),
                                  color="bright red" if r["own"] else None)
        if own:
            self._display.display("owlat.selfhost triggers %d deprecation(s): fix them before the next "
                                  "ansible-core / community.docker removes the feature" % len(own), color="red")


def _hook_display():
    """Wrap Display's deprecation entry points once per process (controller and, after fork, workers)."""
    if getattr(Display, "_owlat_watch", False):
        return
    Display._owlat_watch = True
    public = Display.deprecated

    def deprecated(self, msg, *args, **kwargs):
        watch = CallbackModule._active
        if watch is not None:
            collection = kwargs.get("collection_name") or (args[3] if len(args) > 3 else None)
            deprecator = kwargs.get("deprecator")
            if deprecator is not None:
                collection = getattr(deprecator, "resolved_name", None) or collection
            watch.note(str(msg), collection, None, _caller())
        return public(self, msg, *args, **kwargs)

    Display.deprecated = deprecated
    internal = getattr(Display, "_deprecated", None)
    if internal is not None:  # ansible-core 2.19+: every deprecation shown in the controller passes here
        def _deprecated(self, warning, *args, **kwargs):
            watch = CallbackModule._active
            if watch is not None:
                msg, collection, origin = _summary_fields(warning)
                watch.note(msg, collection, origin, None)
            return internal(self, warning, *args, **kwargs)

        Display._deprecated = _deprecated
