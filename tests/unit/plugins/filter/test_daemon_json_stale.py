from ansible_collections.owlat.selfhost.plugins.filter.daemon_json_stale import daemon_json_stale

SETTINGS = {"log-driver": "local", "log-opts": {"max-size": "10m", "max-file": "3"}, "live-restore": True}


def test_a_file_with_the_settings_and_the_operators_keys_is_not_stale():
    current = dict(SETTINGS, **{"log-opts": {"max-size": "10m", "max-file": "3", "compress": "true"}, "debug": True})
    assert daemon_json_stale(SETTINGS, current) is False


def test_a_changed_or_missing_key_or_an_unreadable_file_is_stale():
    assert daemon_json_stale(SETTINGS, {}) is True
    assert daemon_json_stale(SETTINGS, dict(SETTINGS, **{"live-restore": False})) is True
    assert daemon_json_stale(SETTINGS, dict(SETTINGS, **{"log-opts": {"max-size": "20m", "max-file": "3"}})) is True
    assert daemon_json_stale(dict(SETTINGS, debug=None), dict(SETTINGS, debug=True)) is True  # null removes
    assert daemon_json_stale(dict(SETTINGS, debug=None), SETTINGS) is False
    assert daemon_json_stale(SETTINGS, None) is True
