import re

import pytest

from ansible_collections.owlat.selfhost.plugins.module_utils._owlat import hash_password, is_password_hash

SALT = "00112233445566778899aabbccddeeff"
# Cross-checked with an independent implementation (Node.js crypto.scryptSync(pw.normalize("NFKC"), salt,
# 64, {N: 16384, r: 16, p: 1})), the salt being the 32-character hex string.
VECTORS = [
    (
        "correct horse battery staple",
        "f5b22309b28fe412c82a4b2cab57498b8f8a42c849af16cb908974048f61c139"
        "33421858db3a8f111430bdc493c7cef90f61f904061c77206e3820a2e8b11bc2",
    ),
    (
        "\uff30\uff41\uff53\uff53\u00e9",  # fullwidth "Pass" + e-acute: NFKC folds it to "Passé"
        "2a78a8670cc35b215e91d367f9823603ec787d16e3efae277b7dc70e9e717a8a"
        "6bbaeed8988d77ae66b8fc09bcf04c376b5a985af60819b0dadf75410421c451",
    ),
]


@pytest.mark.parametrize("password, key", VECTORS)
def test_known_vectors(password, key):
    assert hash_password(password, SALT) == "%s:%s" % (SALT, key)


def test_nfkc_normalisation_applies():
    assert hash_password("\uff30\uff41\uff53\uff53e\u0301", SALT) == hash_password("Pass\u00e9", SALT)
    assert hash_password("Pass\u00e9", SALT) == "%s:%s" % (SALT, VECTORS[1][1])


def test_random_salt_format_and_length():
    first, second = hash_password("pw"), hash_password("pw")
    for value in (first, second):
        assert len(value) == 161
        assert re.fullmatch(r"[0-9a-f]{32}:[0-9a-f]{128}", value)
        assert is_password_hash(value)
    assert first != second


def test_the_salt_input_is_the_hex_string_not_its_bytes():
    import hashlib

    over_bytes = hashlib.scrypt(b"pw", salt=bytes.fromhex(SALT), n=16384, r=16, p=1, dklen=64, maxmem=64 << 20).hex()
    assert hash_password("pw", SALT).split(":")[1] != over_bytes


def test_bad_salt_and_bad_hashes():
    with pytest.raises(ValueError):
        hash_password("pw", "XYZ")
    assert not is_password_hash("00:11")
    assert not is_password_hash(SALT.upper() + ":" + "a" * 128)
    assert not is_password_hash(None)
