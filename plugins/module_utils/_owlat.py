# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""Owlat-specific formats: the password hash its seed endpoint stores.

Private to this collection: no compatibility promise outside it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata

PASSWORD_HASH_RE = re.compile(r"^[0-9a-f]{32}:[0-9a-f]{128}\Z")
SCRYPT_N = 16384
SCRYPT_R = 16
SCRYPT_P = 1
SCRYPT_DKLEN = 64
SCRYPT_MAXMEM = 64 * 1024 * 1024


def hash_password(password, salt_hex=None):
    """``<saltHex>:<keyHex>`` as Owlat stores it (161 characters).

    The salt is 16 random bytes written as 32 lowercase hex characters, and that hex *string* (not the
    bytes) is the scrypt salt input. The password is NFKC-normalised first.
    scrypt parameters: N=16384, r=16, p=1, 64-byte key.
    """
    if salt_hex is None:
        salt_hex = secrets.token_hex(16)
    if not re.match(r"^[0-9a-f]{32}\Z", salt_hex):
        raise ValueError("the salt must be 32 lowercase hex characters")
    key = hashlib.scrypt(
        unicodedata.normalize("NFKC", password).encode("utf-8"),
        salt=salt_hex.encode("ascii"),
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=SCRYPT_DKLEN,
        maxmem=SCRYPT_MAXMEM,
    )
    return "%s:%s" % (salt_hex, key.hex())


def is_password_hash(value):
    return isinstance(value, str) and bool(PASSWORD_HASH_RE.match(value))
