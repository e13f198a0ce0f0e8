import os
import re
import stat

from ansible_collections.owlat.selfhost.plugins.modules import owlat_secrets

SECRETS = {
    "INSTANCE_SECRET": "hex64",
    "MTA_SECRET": "hex64",
    "MTA_API_KEY": "mta_key",
    "MTA_WEBHOOK_SECRET": "whsec",
    "BOUNCE_VERP_KEY": "alnum40",
    "REDIS_PASSWORD": "alnum32",
    "BETTER_AUTH_SECRET": "alnum48",
    "UNSUBSCRIBE_SECRET": "alnum48",
}
PATTERNS = {
    "hex64": r"[0-9a-f]{64}",
    "mta_key": r"mta_[A-Za-z0-9]{40}",
    "whsec": r"whsec_[A-Za-z0-9]{40}",
    "alnum32": r"[A-Za-z0-9]{32}",
    "alnum40": r"[A-Za-z0-9]{40}",
    "alnum48": r"[A-Za-z0-9]{48}",
}
OPERATOR_SECRET = "ab" * 32


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def read_env(path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def test_generates_every_secret_in_its_format_then_is_idempotent(run_module, tmp_path):
    path = tmp_path / "etc" / "stack" / "secrets.env"
    first = run_module(owlat_secrets, {"path": str(path), "secrets": SECRETS})
    assert first["changed"] is True and first["failed"] is False
    assert first["generated"] == sorted(SECRETS)
    assert first["replaced"] == [] and first["supplied"] == []
    stored = read_env(path)
    assert stored == first["secrets"]
    for name, fmt in SECRETS.items():
        assert re.fullmatch(PATTERNS[fmt], stored[name]), name
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["secrets.env"]  # no temporary file left behind

    second = run_module(owlat_secrets, {"path": str(path), "secrets": SECRETS})
    assert second["changed"] is False
    assert second["generated"] == []
    assert second["secrets"] == first["secrets"]


def test_two_runs_on_two_hosts_differ(run_module, tmp_path):
    a = run_module(owlat_secrets, {"path": str(tmp_path / "a.env"), "secrets": SECRETS})
    b = run_module(owlat_secrets, {"path": str(tmp_path / "b.env"), "secrets": SECRETS})
    assert all(a["secrets"][n] != b["secrets"][n] for n in SECRETS)


def test_keeps_foreign_names_comments_and_order(run_module, tmp_path):
    path = tmp_path / "secrets.env"
    path.write_text("# escrowed 2026-01-01\nOTHER=keep me\nREDIS_PASSWORD=%s\n" % ("R" * 32))
    res = run_module(owlat_secrets, {"path": str(path), "secrets": {"REDIS_PASSWORD": "alnum32", "MTA_SECRET": "hex64"}})
    assert res["changed"] is True
    assert res["generated"] == ["MTA_SECRET"]
    lines = path.read_text().splitlines()
    assert lines[:3] == ["# escrowed 2026-01-01", "OTHER=keep me", "REDIS_PASSWORD=" + "R" * 32]
    assert lines[3].startswith("MTA_SECRET=")
    assert res["secrets"]["OTHER"] == "keep me"


def test_operator_value_is_stored_and_returned_but_masked_in_arguments(run_module, tmp_path, visible_text):
    path = tmp_path / "secrets.env"
    res = run_module(
        owlat_secrets,
        {"path": str(path), "secrets": SECRETS, "values": {"INSTANCE_SECRET": OPERATOR_SECRET}},
        diff=True,
    )
    assert res["changed"] is True
    assert res["supplied"] == ["INSTANCE_SECRET"]
    assert "INSTANCE_SECRET" not in res["generated"]
    assert read_env(path)["INSTANCE_SECRET"] == OPERATOR_SECRET
    assert res["secrets"]["INSTANCE_SECRET"] == OPERATOR_SECRET
    assert OPERATOR_SECRET not in str(res["invocation"])
    assert OPERATOR_SECRET not in visible_text(res)
    # Same value again: nothing to do.
    again = run_module(owlat_secrets, {"path": str(path), "secrets": SECRETS, "values": {"INSTANCE_SECRET": OPERATOR_SECRET}})
    assert again["changed"] is False


def test_empty_operator_value_counts_as_not_supplied(run_module, tmp_path):
    res = run_module(owlat_secrets, {"path": str(tmp_path / "s.env"), "secrets": SECRETS, "values": {"INSTANCE_SECRET": ""}})
    assert "INSTANCE_SECRET" in res["generated"]


def test_operator_value_with_wrong_format_fails_without_showing_it(run_module, tmp_path):
    path = tmp_path / "secrets.env"
    res = run_module(owlat_secrets, {"path": str(path), "secrets": SECRETS, "values": {"MTA_API_KEY": "mta_tooshort"}})
    assert res["failed"] is True
    assert "MTA_API_KEY" in res["msg"] and "mta_key" in res["msg"]
    assert "mta_tooshort" not in res["msg"]
    assert not path.exists()


def test_operator_value_that_differs_from_the_stored_one_fails(run_module, tmp_path):
    path = tmp_path / "secrets.env"
    stored = "cd" * 32
    path.write_text("INSTANCE_SECRET=%s\n" % stored)
    res = run_module(
        owlat_secrets, {"path": str(path), "secrets": {"INSTANCE_SECRET": "hex64"}, "values": {"INSTANCE_SECRET": OPERATOR_SECRET}}
    )
    assert res["failed"] is True
    assert res["msg"] == (
        "INSTANCE_SECRET differs from the value stored in %s; set allow_change (owlat_stack_secrets_allow_change)"
        " to replace it — data sealed with the old value becomes unreadable" % path
    )
    assert stored not in res["msg"]
    assert path.read_text() == "INSTANCE_SECRET=%s\n" % stored


def test_allow_change_replaces_the_stored_value(run_module, tmp_path, visible_text):
    path = tmp_path / "secrets.env"
    stored = "cd" * 32
    path.write_text("INSTANCE_SECRET=%s\nMTA_SECRET=%s\n" % (stored, "ef" * 32))
    res = run_module(
        owlat_secrets,
        {
            "path": str(path),
            "secrets": {"INSTANCE_SECRET": "hex64", "MTA_SECRET": "hex64"},
            "values": {"INSTANCE_SECRET": OPERATOR_SECRET},
            "allow_change": True,
        },
        diff=True,
    )
    assert res["changed"] is True
    assert res["replaced"] == ["INSTANCE_SECRET"]
    assert read_env(path) == {"INSTANCE_SECRET": OPERATOR_SECRET, "MTA_SECRET": "ef" * 32}
    assert "INSTANCE_SECRET (replaced)" in res["diff"]["after"]
    assert stored not in visible_text(res) and OPERATOR_SECRET not in visible_text(res)


def test_stored_value_with_wrong_format_fails_naming_the_secret(run_module, tmp_path):
    path = tmp_path / "secrets.env"
    path.write_text("MTA_WEBHOOK_SECRET=whsec_short\n")
    res = run_module(owlat_secrets, {"path": str(path), "secrets": {"MTA_WEBHOOK_SECRET": "whsec"}})
    assert res["failed"] is True
    assert "MTA_WEBHOOK_SECRET" in res["msg"] and "does not match the format whsec" in res["msg"]
    assert "whsec_short" not in res["msg"]
    assert path.read_text() == "MTA_WEBHOOK_SECRET=whsec_short\n"
    # allow_change alone never regenerates it ...
    res = run_module(owlat_secrets, {"path": str(path), "secrets": {"MTA_WEBHOOK_SECRET": "whsec"}, "allow_change": True})
    assert res["failed"] is True
    # ... an operator value with allow_change replaces it.
    good = "whsec_" + "a" * 40
    res = run_module(
        owlat_secrets,
        {"path": str(path), "secrets": {"MTA_WEBHOOK_SECRET": "whsec"}, "values": {"MTA_WEBHOOK_SECRET": good}, "allow_change": True},
    )
    assert res["replaced"] == ["MTA_WEBHOOK_SECRET"]
    assert read_env(path)["MTA_WEBHOOK_SECRET"] == good


def test_check_mode_writes_nothing(run_module, tmp_path):
    path = tmp_path / "dir" / "secrets.env"
    res = run_module(owlat_secrets, {"path": str(path), "secrets": SECRETS}, check_mode=True)
    assert res["changed"] is True
    assert res["generated"] == sorted(SECRETS)
    assert not path.exists() and not path.parent.exists()


def test_check_mode_on_a_complete_file_reports_no_change(run_module, tmp_path):
    path = tmp_path / "secrets.env"
    run_module(owlat_secrets, {"path": str(path), "secrets": SECRETS})
    before = path.read_text()
    res = run_module(owlat_secrets, {"path": str(path), "secrets": SECRETS}, check_mode=True)
    assert res["changed"] is False
    assert path.read_text() == before


def test_diff_shows_names_only(run_module, tmp_path):
    path = tmp_path / "secrets.env"
    path.write_text("REDIS_PASSWORD=%s\n" % ("R" * 32))
    res = run_module(owlat_secrets, {"path": str(path), "secrets": {"REDIS_PASSWORD": "alnum32", "MTA_SECRET": "hex64"}}, diff=True)
    assert res["diff"]["before"] == "REDIS_PASSWORD\n"
    assert res["diff"]["after"] == "MTA_SECRET (generated)\nREDIS_PASSWORD\n"
    for value in res["secrets"].values():
        assert value not in str(res["diff"])


def test_existing_file_with_loose_mode_is_tightened(run_module, tmp_path):
    path = tmp_path / "secrets.env"
    run_module(owlat_secrets, {"path": str(path), "secrets": SECRETS})
    os.chmod(path, 0o644)
    checked = run_module(owlat_secrets, {"path": str(path), "secrets": SECRETS}, check_mode=True)
    assert checked["changed"] is True and mode(path) == 0o644
    res = run_module(owlat_secrets, {"path": str(path), "secrets": SECRETS})
    assert res["changed"] is True and res["generated"] == []
    assert mode(path) == 0o600


def test_values_for_unlisted_names_and_unknown_formats_fail(run_module, tmp_path):
    res = run_module(owlat_secrets, {"path": str(tmp_path / "s.env"), "secrets": {"A": "hex64"}, "values": {"B": "x"}})
    assert res["failed"] is True and "B is not listed in secrets" in res["msg"]
    res = run_module(owlat_secrets, {"path": str(tmp_path / "s.env"), "secrets": {"A": "hex32"}})
    assert res["failed"] is True and "unknown format 'hex32' for A" in res["msg"]
    res = run_module(owlat_secrets, {"path": str(tmp_path / "s.env"), "secrets": {"1A": "hex64"}})
    assert res["failed"] is True and "not a valid variable name" in res["msg"]


def test_broken_or_ambiguous_file_is_not_overwritten(run_module, tmp_path):
    path = tmp_path / "secrets.env"
    path.write_text("this is not an env line\n")
    res = run_module(owlat_secrets, {"path": str(path), "secrets": SECRETS})
    assert res["failed"] is True and "line 1 is not NAME=value" in res["msg"]
    path.write_text("REDIS_PASSWORD=%s\nREDIS_PASSWORD=%s\n" % ("a" * 32, "b" * 32))
    res = run_module(owlat_secrets, {"path": str(path), "secrets": SECRETS})
    assert res["failed"] is True and "REDIS_PASSWORD is set twice" in res["msg"]
    assert "a" * 32 not in res["msg"]
    assert path.read_text() == "REDIS_PASSWORD=%s\nREDIS_PASSWORD=%s\n" % ("a" * 32, "b" * 32)


def test_a_widened_directory_is_narrowed_again(run_module, tmp_path):
    from ansible_collections.owlat.selfhost.plugins.modules import owlat_secrets as mod
    import os
    import stat

    path = tmp_path / "stack" / "secrets.env"
    first = run_module(mod, dict(path=str(path), secrets={"INSTANCE_SECRET": "hex64"}))
    assert first["changed"] and stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    os.chmod(path.parent, 0o755)
    again = run_module(mod, dict(path=str(path), secrets={"INSTANCE_SECRET": "hex64"}))
    assert again["changed"] and stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert again["secrets"] == first["secrets"]
    assert not run_module(mod, dict(path=str(path), secrets={"INSTANCE_SECRET": "hex64"}))["changed"]
