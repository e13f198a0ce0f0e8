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


class FakeManager:
    def __init__(self, cache):
        self._nonpersistent_fact_cache = cache


class FakeTask:
    def __init__(self, manager):
        self.manager = manager

    def get_variable_manager(self):
        return self.manager


def test_facts_and_results_of_the_run_are_not_settings():
    task_vars = {"owlat_stack_name": "acme", "owlat_backup_last": {"snapshot_id": "1"}, "other": 1,
                 "owlat_stack_adopt_install": {"found": True}}
    runtime = action.runtime_names(FakeTask(FakeManager({"h1": {"owlat_backup_last": {}, "owlat_stack_adopt_install": {}},
                                                          "h2": {"owlat_stack_name": "x"}})), "h1")
    assert action.setting_names(task_vars, runtime) == ["owlat_stack_name"]
    # Unreadable: every owlat_* variable counts (a wider digest only costs a full path).
    assert action.setting_names(task_vars, action.runtime_names(FakeTask(None), "h1")) == [
        "owlat_backup_last", "owlat_stack_adopt_install", "owlat_stack_name"]
    assert action.runtime_names(object(), "h1") == frozenset()
