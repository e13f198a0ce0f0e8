import pytest

from ansible_collections.owlat.selfhost.plugins.module_utils._daemon_json import (
    DaemonJsonError,
    merge,
    parse,
    render,
)


def test_merge_keeps_foreign_keys_and_nested_ones():
    current = {"labels": ["a"], "log-opts": {"labels": "owner", "max-size": "1m"}}
    out = merge(current, {"log-opts": {"max-size": "10m"}, "live-restore": True})
    assert out == {"labels": ["a"], "log-opts": {"labels": "owner", "max-size": "10m"}, "live-restore": True}


def test_merge_does_not_mutate_input():
    current = {"log-opts": {"max-size": "1m"}}
    merge(current, {"log-opts": {"max-size": "10m"}})
    assert current == {"log-opts": {"max-size": "1m"}}


def test_lists_replace_rather_than_append():
    assert merge({"registry-mirrors": ["https://a"]}, {"registry-mirrors": ["https://b"]}) == {
        "registry-mirrors": ["https://b"]
    }


def test_none_and_remove_drop_keys():
    out = merge({"a": 1, "b": 2, "c": 3}, {"a": None}, remove=["b", "missing"])
    assert out == {"c": 3}


def test_scalar_replaces_object_and_back():
    assert merge({"x": {"y": 1}}, {"x": 5}) == {"x": 5}
    assert merge({"x": 5}, {"x": {"y": 1}}) == {"x": {"y": 1}}


@pytest.mark.parametrize("text", ["", "  \n", None])
def test_empty_file_is_empty_config(text):
    assert parse(text) == {}


@pytest.mark.parametrize("text,msg", [("{bad", "not valid JSON"), ("[1, 2]", "JSON object")])
def test_unparseable_file_is_refused(text, msg):
    with pytest.raises(DaemonJsonError, match=msg):
        parse(text)


def test_render_is_stable():
    assert render({"b": 1, "a": {"d": 2, "c": 3}}) == render({"a": {"c": 3, "d": 2}, "b": 1})
    assert render({}).endswith("\n")
