import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.owlat.selfhost.plugins.filter.image_mirror import image_mirror, split_reference


@pytest.mark.parametrize(
    "ref,expected",
    [
        ("ghcr.io/wolvesdotink/web:0.4.4", "m:5000/wolvesdotink/web:0.4.4"),
        ("redis:7.4-alpine", "m:5000/library/redis:7.4-alpine"),
        ("clamav/clamav:stable", "m:5000/clamav/clamav:stable"),
        ("localhost:5000/a/b:1", "m:5000/a/b:1"),
        ("ghcr.io/w/mta:0.4.4@sha256:" + "a" * 64, "m:5000/w/mta:0.4.4@sha256:" + "a" * 64),
    ],
)
def test_mirror(ref, expected):
    assert image_mirror(ref, "m:5000") == expected


def test_no_mirror_is_identity():
    assert image_mirror("redis:7.4-alpine", "") == "redis:7.4-alpine"


def test_digest_can_be_dropped():
    assert image_mirror("ghcr.io/w/web:1@sha256:" + "b" * 64, "m", keep_digest=False) == "m/w/web:1"


def test_split_reference_port_is_not_a_tag():
    assert split_reference("reg:5000/app") == ("reg:5000", "app", "", "")


@pytest.mark.parametrize("bad", ["", None, "a b"])
def test_rejects_garbage(bad):
    with pytest.raises(AnsibleFilterError):
        image_mirror(bad, "m")
