# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: image_mirror
short_description: Point an image reference at a private registry mirror
version_added: 0.1.0
description:
  - Rewrites C(ghcr.io/org/app:1.0) to C(<mirror>/org/app:1.0) and Docker Hub short names
    (C(redis:7.4-alpine)) to C(<mirror>/library/redis:7.4-alpine), the way registry mirrors name them.
  - An empty mirror returns the reference unchanged.
options:
  _input:
    description: An image reference, optionally with C(@sha256:...) digest.
    type: str
    required: true
  mirror:
    description: Registry host[:port], optionally with a path prefix; empty for none.
    type: str
    required: true
  keep_digest:
    description: Keep a C(@sha256) digest. Only true when the mirror holds the very same manifests.
    type: bool
    default: true
"""

EXAMPLES = r"""
image: "{{ 'ghcr.io/wolvesdotink/web:0.4.4' | owlat.selfhost.image_mirror('registry.example.com:5000') }}"
# -> registry.example.com:5000/wolvesdotink/web:0.4.4
"""

RETURN = r"""
_value:
  description: The rewritten reference.
  type: str
"""

from ansible.errors import AnsibleFilterError


def split_reference(ref):
    """Return (registry or '', path, tag or '', digest or '') of an image reference."""
    if not isinstance(ref, str) or not ref or " " in ref:
        raise AnsibleFilterError("not an image reference: %r" % (ref,))
    name, dummy, digest = ref.partition("@")
    first, dummy, rest = name.partition("/")
    registry = ""
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, name = first, rest
    path, tag = name, ""
    if ":" in name.rsplit("/", 1)[-1]:
        path, tag = name.rsplit(":", 1)
    return registry, path, tag, digest


def image_mirror(ref, mirror, keep_digest=True):
    if not mirror:
        return ref
    registry, path, tag, digest = split_reference(ref)
    if not registry and "/" not in path:
        path = "library/" + path
    out = "%s/%s" % (mirror.rstrip("/"), path)
    if tag:
        out += ":" + tag
    if digest and keep_digest:
        out += "@" + digest
    return out


class FilterModule:
    def filters(self):
        return {"image_mirror": image_mirror}
