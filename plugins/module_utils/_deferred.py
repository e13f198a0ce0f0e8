# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""A module_utils function imported when a filter first calls it, not when ansible imports the filter's file.

Every task runs in a freshly forked worker, and a worker that resolves any filter of the collection imports every
filter file of it. Their module_utils (the PostgreSQL client with ssl, smtplib, the status code) are compiled from
source each time, by the collection loader: about 2 s of controller CPU in a 20 s run of site.yml, mostly for
filters the worker never calls."""

from __future__ import annotations

import importlib

PACKAGE = "ansible_collections.owlat.selfhost.plugins.module_utils."


def deferred(module, name):
    """The function `name` of module_utils `module`, imported on its first call."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(PACKAGE + module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call
