"""The controller side of the fast path: what enters the inputs digest."""

from ansible_collections.owlat.selfhost.plugins.action import owlat_converged as action


def test_collection_digest_follows_every_file_of_roles_plugins_and_playbooks(tmp_path):
    (tmp_path / "roles/stack/tasks").mkdir(parents=True)
    (tmp_path / "roles/stack/tasks/main.yml").write_text("- name: a\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/t.py").write_text("x")
    first = action.tree_digest(str(tmp_path))
    (tmp_path / "tests/t.py").write_text("y")  # not part of what a run executes
    assert action.tree_digest(str(tmp_path)) == first
    (tmp_path / "roles/stack/tasks/main.yml").write_text("- name: b\n")
    assert action.tree_digest(str(tmp_path)) != first
    (tmp_path / "roles/stack/tasks/main.yml").write_text("- name: a\n")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks/site.yml").write_text("---\n")
    assert action.tree_digest(str(tmp_path)) != first


def test_inputs_digest_is_order_free_and_sees_every_value():
    a = action.inputs_digest({"owlat_stack_name": "acme", "owlat_stack_images": {"web": "w:1", "mta": "m:1"}}, "c")
    b = action.inputs_digest({"owlat_stack_images": {"mta": "m:1", "web": "w:1"}, "owlat_stack_name": "acme"}, "c")
    assert a == b
    assert action.inputs_digest({"owlat_stack_name": "acme", "owlat_stack_images": {"web": "w:2", "mta": "m:1"}}, "c") != a
    assert action.inputs_digest({"owlat_stack_name": "acme", "owlat_stack_images": {"web": "w:1", "mta": "m:1"}}, "d") != a


def test_plain_values_are_json_able():
    assert action._plain({1: ("a", {"b"}), "n": None, "t": True}) == {"1": ["a", ["b"]], "n": None, "t": True}
