# TEST DOUBLE support code: Convex-style admin keys for the convex-backend double (not the real scheme).
"""Admin keys `<instance name>|<hex>` for the convex-backend double.

The real backend seals (issue time, member id) with AES-GCM-SIV keyed from INSTANCE_SECRET. The double
uses only the standard library, with the same shape and the same observable properties (every mint
differs, all verify until the secret changes, no expiry, bound to the instance name):

    hex = version (0x01) | nonce (12 random bytes) | ciphertext (16) | tag (16)
    ciphertext = pack(">QQ", issue_time, member_id) XOR HMAC-SHA256(secret, b"ks" + nonce)[:16]
    tag        = HMAC-SHA256(secret, version + nonce + ciphertext)[:16]

`secret` is the 32 bytes of the 64-hex INSTANCE_SECRET.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import struct
import time

VERSION = b"\x01"
SECRET_RE = re.compile(r"^[0-9a-fA-F]{64}$")
INSTANCE_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
DEFAULT_INSTANCE_NAME = "convex-self-hosted"


class CredentialError(ValueError):
    pass


def check_secret(secret: str) -> bytes:
    if not SECRET_RE.match(secret or ""):
        raise CredentialError(
            "INSTANCE_SECRET must be exactly 64 hex characters (32 bytes), got "
            f"{len(secret or '')} characters{'' if not secret else ' that are not all hex' if len(secret) == 64 else ''}"
        )
    return bytes.fromhex(secret)


def check_name(name: str) -> str:
    if not name or not INSTANCE_NAME_RE.match(name):
        raise CredentialError(f"INSTANCE_NAME {name!r} is invalid: use letters, digits, '-' and '_'")
    return name


def _keystream(key: bytes, nonce: bytes) -> bytes:
    return hmac.new(key, b"ks" + nonce, hashlib.sha256).digest()[:16]


def mint(instance_name: str, secret_hex: str, member_id: int = 0, issued: int | None = None) -> str:
    key = check_secret(secret_hex)
    nonce = secrets.token_bytes(12)
    plain = struct.pack(">QQ", int(issued if issued is not None else time.time()), member_id)
    ct = bytes(a ^ b for a, b in zip(plain, _keystream(key, nonce)))
    tag = hmac.new(key, VERSION + nonce + ct, hashlib.sha256).digest()[:16]
    return f"{instance_name}|{(VERSION + nonce + ct + tag).hex()}"


def verify(key_str: str, instance_name: str, secret_hex: str) -> dict | None:
    """Return {"issued", "member_id"} for a valid key, else None."""
    if not key_str or "|" not in key_str:
        return None
    name, _, hexpart = key_str.rpartition("|")
    if name != instance_name:
        return None
    try:
        raw = bytes.fromhex(hexpart)
        key = check_secret(secret_hex)
    except ValueError:
        return None
    if len(raw) != 1 + 12 + 16 + 16 or raw[:1] != VERSION:
        return None
    nonce, ct, tag = raw[1:13], raw[13:29], raw[29:45]
    want = hmac.new(key, VERSION + nonce + ct, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(want, tag):
        return None
    issued, member = struct.unpack(">QQ", bytes(a ^ b for a, b in zip(ct, _keystream(key, nonce))))
    return {"issued": issued, "member_id": member}


def read_credentials(cred_dir: str) -> tuple[str | None, str | None, str, str]:
    """(name, secret, name_source, secret_source) from the env, else the credential files."""
    name, name_src = os.environ.get("INSTANCE_NAME") or None, "env"
    secret, secret_src = os.environ.get("INSTANCE_SECRET") or None, "env"
    if name is None:
        name_src = "file"
        name = _read(os.path.join(cred_dir, "instance_name"))
    if secret is None:
        secret_src = "file"
        secret = _read(os.path.join(cred_dir, "instance_secret"))
    return name, secret, name_src, secret_src


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or None
    except FileNotFoundError:
        return None
