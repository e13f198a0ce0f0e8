import re

import pytest

from ansible_collections.owlat.selfhost.plugins.module_utils import _secret_formats as formats

EXPECTED = {
    "hex64": r"[0-9a-f]{64}",
    "mta_key": r"mta_[A-Za-z0-9]{40}",
    "whsec": r"whsec_[A-Za-z0-9]{40}",
    "alnum32": r"[A-Za-z0-9]{32}",
    "alnum40": r"[A-Za-z0-9]{40}",
    "alnum48": r"[A-Za-z0-9]{48}",
}


def test_known_formats_are_exactly_the_documented_ones():
    assert formats.KNOWN_FORMATS == sorted(EXPECTED)


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_generated_values_match_their_format_and_differ(fmt):
    values = {formats.generate(fmt) for dummy in range(50)}
    assert len(values) == 50
    for value in values:
        assert re.fullmatch(EXPECTED[fmt], value)
        assert formats.is_valid(fmt, value)


def test_alphabet_is_used_in_full():
    seen = set("".join(formats.generate("alnum48") for dummy in range(200)))
    assert seen == set(formats.ALNUM)


@pytest.mark.parametrize(
    "fmt, value",
    [
        ("hex64", "AB" * 32),  # uppercase hex
        ("hex64", "ab" * 31),
        ("hex64", "ab" * 32 + "\n"),
        ("mta_key", "mta_" + "a" * 39),
        ("mta_key", "MTA_" + "a" * 40),
        ("mta_key", "mta_" + "a" * 39 + "-"),
        ("whsec", "whsec" + "a" * 41),
        ("alnum32", "a" * 33),
        ("alnum40", "a" * 39 + "_"),
        ("alnum48", ""),
        ("alnum48", None),
    ],
)
def test_invalid_values_are_refused(fmt, value):
    assert not formats.is_valid(fmt, value)


def test_describe_names_the_format_not_a_value():
    assert formats.describe("whsec") == "whsec (whsec_ followed by 40 characters [A-Za-z0-9])"
