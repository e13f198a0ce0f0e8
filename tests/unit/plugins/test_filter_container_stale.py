import pytest

from ansible_collections.owlat.selfhost.plugins.filter.container_stale import container_stale

PROBE = {"containers": {"web": {"settled": True}, "mta": {"settled": False}, "clamav": {"settled": True}}}
APPLIED = {"web": "h1", "mta": "h2", "clamav": "h3", "redis": "h4"}


@pytest.mark.parametrize(
    "name,hash_,present,force,stale",
    [
        ("web", "h1", True, False, False),   # settled and defined as applied last: left alone
        ("web", "h1", True, True, True),     # compare everything
        ("web", "new", True, False, True),   # a setting, an image or the task changed
        ("mta", "h2", True, False, True),    # stopped, or on an image its tag no longer names
        ("redis", "h4", True, False, True),  # removed by hand
        ("clamav", "h3", False, False, True),  # disabled but still there
        ("redis", "h4", False, False, False),  # disabled and gone
        ("dashboard", "h5", True, False, True),  # never applied
    ],
)
def test_stale(name, hash_, present, force, stale):
    assert container_stale(name, hash_, PROBE, APPLIED, force=force, present=present) is stale


def test_no_probe_or_record_means_stale():
    assert container_stale("web", "h1", {}, None) is True
    assert container_stale("web", "h1", None, APPLIED) is True
