# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""Merging Docker's daemon.json without losing keys set by the operator or other tools.

Private to this collection: no compatibility promise outside it.
"""

from __future__ import annotations

import copy
import json


class DaemonJsonError(Exception):
    """The existing file cannot be merged safely."""


def parse(text):
    """Parse daemon.json text; an empty or blank file is an empty config."""
    if not text or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DaemonJsonError("is not valid JSON (%s); fix or remove it, it will not be overwritten" % exc)
    if not isinstance(data, dict):
        raise DaemonJsonError("must hold a JSON object, found %s" % type(data).__name__)
    return data


def merge(current, settings, remove=None):
    """Return a new config: `current` with `settings` merged in and `remove` keys dropped.

    Nested objects merge key by key (an operator's extra ``log-opts`` stay); any other
    value, lists included, replaces the current one. A ``None`` value in settings removes the key.
    """
    result = copy.deepcopy(current)
    for key, value in settings.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    for key in remove or ():
        result.pop(key, None)
    return result


def render(config):
    """Stable text for a config: sorted keys, two-space indent, trailing newline."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"
