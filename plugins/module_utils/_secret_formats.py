# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""The exact secret formats the Owlat stack expects, with generators and validators.

Values come from the ``secrets`` module (the operating system's CSPRNG). Error messages produced
here describe formats, never values.

Private to this collection: no compatibility promise outside it.
"""

from __future__ import annotations

import re
import secrets
import string

ALNUM = string.ascii_letters + string.digits


def _alnum(length):
    return "".join(secrets.choice(ALNUM) for dummy in range(length))


# name: (pattern, generator, description)
FORMATS = {
    "hex64": (re.compile(r"^[0-9a-f]{64}\Z"), lambda: secrets.token_hex(32), "64 lowercase hex characters"),
    "mta_key": (re.compile(r"^mta_[A-Za-z0-9]{40}\Z"), lambda: "mta_" + _alnum(40), "mta_ followed by 40 characters [A-Za-z0-9]"),
    "whsec": (re.compile(r"^whsec_[A-Za-z0-9]{40}\Z"), lambda: "whsec_" + _alnum(40), "whsec_ followed by 40 characters [A-Za-z0-9]"),
    "alnum32": (re.compile(r"^[A-Za-z0-9]{32}\Z"), lambda: _alnum(32), "32 characters [A-Za-z0-9]"),
    "alnum40": (re.compile(r"^[A-Za-z0-9]{40}\Z"), lambda: _alnum(40), "40 characters [A-Za-z0-9]"),
    "alnum48": (re.compile(r"^[A-Za-z0-9]{48}\Z"), lambda: _alnum(48), "48 characters [A-Za-z0-9]"),
}

KNOWN_FORMATS = sorted(FORMATS)


def is_known(fmt):
    return fmt in FORMATS


def generate(fmt):
    return FORMATS[fmt][1]()


def is_valid(fmt, value):
    return isinstance(value, str) and bool(FORMATS[fmt][0].match(value))


def describe(fmt):
    return "%s (%s)" % (fmt, FORMATS[fmt][2])
