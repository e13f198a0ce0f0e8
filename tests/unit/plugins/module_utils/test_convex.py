import pytest

from ansible_collections.owlat.selfhost.plugins.module_utils._convex import (
    ConvexClient,
    ConvexError,
    admin_key_from_output,
    env_name_problem,
    normalize_value,
    plan_env,
    redact_admin_keys,
)


def test_plan_add_update_remove_and_untouched_foreign_names():
    current = {"A": "1", "B": "old", "HAND": "x", "GONE": "g"}
    plan = plan_env(current, {"A": "1", "B": "new", "C": "3"}, managed=["A", "B", "GONE"], prune=True)
    assert plan.added == ["C"] and plan.updated == ["B"] and plan.removed == ["GONE"]
    assert plan.changes == [
        {"name": "B", "value": "new"},
        {"name": "C", "value": "3"},
        {"name": "GONE", "value": None},
    ]
    assert plan.managed == ["A", "B", "C"]
    assert plan.needed


def test_plan_nothing_to_do():
    plan = plan_env({"A": "1", "HAND": "x"}, {"A": "1"}, managed=["A"])
    assert not plan.needed and plan.changes == [] and plan.managed == ["A"]


def test_plan_without_prune_keeps_dropped_names_managed():
    plan = plan_env({"A": "1", "OLD": "o"}, {"A": "1"}, managed=["A", "OLD"], prune=False)
    assert plan.removed == [] and plan.managed == ["A", "OLD"]


def test_plan_prune_of_a_name_already_gone_forgets_it_without_a_change():
    plan = plan_env({"A": "1"}, {"A": "1"}, managed=["A", "OLD"], prune=True)
    assert not plan.needed and plan.managed == ["A"]


def test_plan_null_value_removes_and_is_not_managed():
    plan = plan_env({"HAND": "x"}, {"HAND": None, "MISSING": None}, managed=[])
    assert plan.removed == ["HAND"] and plan.changes == [{"name": "HAND", "value": None}]
    assert plan.managed == []


@pytest.mark.parametrize(
    "name, problem",
    [
        ("SITE_URL", None),
        ("_x9", None),
        ("a" * 256, None),
        ("a" * 257, "longer than 256"),
        ("9A", "not a valid name"),
        ("A-B", "not a valid name"),
        ("A B", "not a valid name"),
        ("", "not a valid name"),
        ("CONVEX_SITE_URL", "built into Convex"),
        ("CONVEX_CLOUD_URL", "built into Convex"),
    ],
)
def test_env_name_problem(name, problem):
    found = env_name_problem(name)
    if problem is None:
        assert found is None
    else:
        assert problem in found


def test_normalize_value():
    assert normalize_value(True) == "true" and normalize_value(False) == "false"
    assert normalize_value(16) == "16" and normalize_value("x") == "x" and normalize_value(None) is None
    with pytest.raises(TypeError):
        normalize_value(["a"])


def test_admin_key_from_output():
    assert admin_key_from_output("convex-self-hosted|0a1b\n") == "convex-self-hosted|0a1b"
    assert admin_key_from_output("noise\nconvex-self-hosted|0a1b\n\n  \n") == "convex-self-hosted|0a1b"
    assert admin_key_from_output("convex-self-hosted|0a1b\nAdmin key:\n") is None
    assert admin_key_from_output("convex-self-hosted|0A1B\n") is None  # hex is lowercase
    assert admin_key_from_output("has space|0a1b") is None
    assert admin_key_from_output("") is None and admin_key_from_output(None) is None


def test_redact_admin_keys():
    assert redact_admin_keys("key convex-self-hosted|0123456789abcdef99 end") == "key <admin key> end"
    assert redact_admin_keys("a|b") == "a|b"


def test_client_against_the_fake_backend(fake_convex):
    key = fake_convex.mint()
    client = ConvexClient(fake_convex.url + "/", key, timeout=5)
    assert client.check_admin_key() is True
    assert client.check_admin_key("convex-self-hosted|00") is False
    assert ConvexClient(fake_convex.url).check_admin_key() is False  # no header: 403
    client.update_env([{"name": "A", "value": "1"}])
    assert client.list_env() == {"A": "1"}
    with pytest.raises(ConvexError) as err:
        client.update_env([{"name": "CONVEX_SITE_URL", "value": "x"}])
    assert err.value.status == 400 and err.value.code == "EnvVarNameForbidden"
    assert "HTTP 400 EnvVarNameForbidden" in str(err.value)


def test_client_unexpected_answers(fake_http):
    server = fake_http(lambda handler, method, path: (500, "internal", None))
    client = ConvexClient(server.url, "convex-self-hosted|0123456789abcdef0123")
    with pytest.raises(ConvexError, match="unexpected answer from .*HTTP 500: internal"):
        client.check_admin_key()
    with pytest.raises(ConvexError) as err:
        client.list_env()
    assert "0123456789abcdef0123" not in str(err.value)
    server2 = fake_http(lambda handler, method, path: (200, {"nope": 1}, None))
    with pytest.raises(ConvexError, match="no environmentVariables object"):
        ConvexClient(server2.url, "k|00").list_env()


def test_client_unreachable(closed_port):
    with pytest.raises(ConvexError) as err:
        ConvexClient("http://127.0.0.1:%d" % closed_port).check_admin_key("k|00")
    assert err.value.status is None and "unreachable: connection refused" in str(err.value)
