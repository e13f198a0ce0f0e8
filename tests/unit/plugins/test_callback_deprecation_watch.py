"""The deprecation watch (callback owlat.selfhost.deprecation_watch): the classifier, and a real
ansible-playbook run of this venv's ansible-core in which a module deprecates something from a task of the
collection's content (recorded as own) and from tooling and a foreign playbook (recorded, not own)."""

import json
import os
import pathlib
import subprocess
import sys

from ansible_collections.owlat.selfhost.plugins.callback import deprecation_watch as watch

ROOT = pathlib.Path(__file__).resolve().parents[3]

MODULE = '''#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule

def main():
    m = AnsibleModule(argument_spec=dict(msg=dict(type="str"), collection=dict(type="str")))
    m.deprecate(m.params["msg"], version="99.0.0", collection_name=m.params["collection"])
    m.exit_json(changed=False)

main()
'''


def test_classify_paths(tmp_path):
    root = str(tmp_path)
    assert watch.classify(root + "/roles/stack/tasks/main.yml:12", root) == "own"
    assert watch.classify(root + "/playbooks/site.yml", root) == "own"
    assert watch.classify(root + "/plugins/filter/x.py:3", root) == "own"
    assert watch.classify(root + "/molecule/stack/verify.yml:1", root) == "tooling"
    assert watch.classify(root + "/lab/demo.yml", root) == "tooling"
    assert watch.classify("/usr/lib/python3/site-packages/molecule_plugins/docker/playbooks/create.yml:9", root) == "foreign"
    assert watch.classify(None, root) is None


def test_verdict(tmp_path):
    root = str(tmp_path)
    own = {"msg": "x", "collection": "community.docker", "task_path": root + "/roles/app/tasks/web.yml:4"}
    assert watch.verdict(own, root)[0] is True
    assert watch.verdict(dict(own, task_path=root + "/molecule/x/prepare.yml:2"), root)[0] is False
    # A source position from ansible-core wins over the task (a deprecated keyword in a foreign file).
    assert watch.verdict(dict(own, origin="/elsewhere/tasks.yml"), root)[0] is False
    assert watch.verdict({"msg": "m", "collection": "owlat.selfhost.owlat_files"}, root)[0] is True
    assert watch.verdict({"msg": "setting ANSIBLE_X is deprecated"}, root)[0] is False
    assert watch.verdict(own, root, allow=[r"^x$"]) == (False, "allowed: ^x$")


def test_allow_file(tmp_path):
    f = tmp_path / "allow.txt"
    f.write_text("# reason\nfoo.*bar\n\n")
    assert watch.load_allow(str(f)) == ["foo.*bar"]
    assert watch.load_allow(str(tmp_path / "missing")) == []


def test_a_real_run_records_own_and_tooling_deprecations(tmp_path):
    """ansible-playbook with the callback enabled (and deprecation_warnings off, as ansible.cfg has it)."""
    tree = tmp_path / "tree"
    (tree / "roles/demo/tasks").mkdir(parents=True)
    (tree / "molecule/s").mkdir(parents=True)
    (tree / "library").mkdir()
    (tree / "library/old_api.py").write_text(MODULE)
    (tree / "roles/demo/tasks/main.yml").write_text(
        "- name: Own\n  old_api:\n    msg: option foo of community.docker.x is deprecated\n"
        "    collection: community.docker\n")
    (tree / "molecule/s/prepare.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: Tooling\n      old_api:\n        msg: tooling option\n        collection: community.docker\n"
        "    - name: Role\n      ansible.builtin.include_role:\n        name: demo\n")
    log = tmp_path / "deprecations.jsonl"
    env = dict(os.environ,
               ANSIBLE_CONFIG=str(tmp_path / "none.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_ROLES_PATH=str(tree / "roles"),
               ANSIBLE_LIBRARY=str(tree / "library"),
               ANSIBLE_CALLBACKS_ENABLED="owlat.selfhost.deprecation_watch",
               ANSIBLE_DEPRECATION_WARNINGS="False",
               ANSIBLE_NOCOLOR="1",
               OWLAT_DEPRECATION_ROOT=str(tree),
               OWLAT_DEPRECATION_LOG=str(log))
    playbook = pathlib.Path(sys.executable).parent / "ansible-playbook"
    done = subprocess.run([str(playbook), "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
                           str(tree / "molecule/s/prepare.yml")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    own = {r["msg"] for r in records if r["own"]}
    other = {r["msg"] for r in records if not r["own"]}
    assert any("option foo" in m for m in own), records
    assert any("tooling option" in m for m in other), records
    assert not any("tooling option" in m for m in own), records
    assert "DEPRECATIONS" in done.stdout
