"""The AWX import files stay in step with the collection: surveys and credential types name variables the
playbooks and roles really read, release choices match the catalog, the EE pins what the repository pins."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
AWX = ROOT / "extensions/awx"
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}


def collection_text():
    parts = []
    for pattern in ("playbooks/*.yml", "roles/*/defaults/main.yml", "roles/*/meta/argument_specs.yml",
                    "roles/*/tasks/*.yml", "roles/*/vars/main.yml"):
        parts += [p.read_text() for p in ROOT.glob(pattern)]
    return "\n".join(parts)


def role_defaults():
    out = {}
    for path in ROOT.glob("roles/*/defaults/main.yml"):
        out.update(yaml.safe_load(path.read_text()) or {})
    return out


def catalog():
    return list(yaml.safe_load((ROOT / "roles/stack/vars/main.yml").read_text())["owlat_stack_release_catalog"])


SURVEYS = sorted((AWX / "surveys").glob("*.json"))


@pytest.mark.parametrize("path", SURVEYS, ids=[p.stem for p in SURVEYS])
def test_survey_is_a_valid_spec_of_known_variables(path):
    spec = json.loads(path.read_text())
    assert spec["name"] and spec["description"] and spec["spec"]
    text = collection_text()
    for q in spec["spec"]:
        assert q["type"] in SURVEY_TYPES, q
        assert {"question_name", "variable", "required", "default"} <= set(q), q
        # Survey answers are strings/numbers/lists: a boolean question would arrive as the string "false".
        assert not isinstance(q["default"], bool), q
        assert re.search(r"\b%s\b" % re.escape(q["variable"]), text), "%s: no playbook or role reads %s" % (
            path.name, q["variable"])
        if q["type"] in ("multiplechoice", "multiselect"):
            choices = q["choices"].split("\n")
            defaults = [d for d in str(q["default"]).split("\n") if d]
            assert set(defaults) <= set(choices), q


def test_release_choices_are_the_catalog():
    spec = json.loads((AWX / "surveys/upgrade.json").read_text())
    for q in spec["spec"]:
        if q["variable"] in ("owlat_upgrade_release", "owlat_upgrade_acknowledge"):
            assert q["choices"].split("\n") == catalog(), "update the survey's releases to the catalog's"


CREDENTIAL_TYPES = sorted((AWX / "credential_types").glob("*.yml"))


@pytest.mark.parametrize("path", CREDENTIAL_TYPES, ids=[p.stem for p in CREDENTIAL_TYPES])
def test_credential_type_injects_role_variables_in_their_shape(path):
    ctype = yaml.safe_load(path.read_text())
    fields = {f["id"]: f for f in ctype["inputs"]["fields"]}
    assert set(ctype["inputs"]["required"]) <= set(fields)
    assert all(f.get("secret") for i, f in fields.items() if "password" in i or "secret" in i or "token" in i)
    defaults = role_defaults()
    used = set()
    for name, value in ctype["injectors"]["extra_vars"].items():
        assert name in defaults, "%s injects %s, which no role defines" % (path.name, name)
        default = defaults[name]
        if isinstance(default, (list, dict)):
            assert type(value) is type(default), "%s: %s must be a %s" % (path.name, name, type(default).__name__)
        used |= set(re.findall(r"{{\s*(\w+)\s*}}", json.dumps(value)))
    assert used == set(fields), "%s: inputs not injected: %s" % (path.name, set(fields) - used)


def test_execution_environment_pins_what_the_repository_pins():
    ee = yaml.safe_load((ROOT / "extensions/ee/execution-environment.yml").read_text())
    assert ee["version"] == 3
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert ee["dependencies"]["ansible_core"]["package_pip"] == "ansible-core==" + pins["ansible-core"]
    assert "owlat.selfhost" in ee["dependencies"]["exclude"]["all_from_collections"]
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    reqs = yaml.safe_load((ROOT / "extensions/ee/requirements.yml").read_text())["collections"]
    docker = [c for c in reqs if c["name"] == "community.docker"]
    assert docker and docker[0]["version"] == galaxy["dependencies"]["community.docker"]


def test_ansible_builder_creates_the_build_context(tmp_path):
    """`ansible-builder create` (extensions/ee/build.sh) gives a context with the collection built from this
    checkout, its collection dependencies and the controller-side Python packages."""
    bin_dir = pathlib.Path(sys.executable).parent
    if not (bin_dir / "ansible-builder").exists():
        pytest.fail("ansible-builder is not installed next to this Python (requirements.txt pins it)")
    ee = tmp_path / "ee"
    shutil.copytree(ROOT / "extensions/ee", ee, ignore=shutil.ignore_patterns("context", "_collections"))
    env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]))
    # build.sh finds the collection two levels up: run a copy whose parent tree is the checkout.
    script = (ee / "build.sh").read_text().replace('root="$(cd "$here/../.." && pwd)"', 'root="%s"' % ROOT)
    (ee / "build.sh").write_text(script)
    done = subprocess.run(["bash", str(ee / "build.sh")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Complete! The build context can be found at" in done.stdout
    context = ee / "context"
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile
    built = context / "_build/collections/owlat-selfhost.tar.gz"
    # Lower bound: the collection is in it; upper bound: no lab state, venv or npm tool chain came along
    # (the convex CLI's Node once made it 85 MB and the build 40 s).
    assert 10000 < built.stat().st_size < 5 * 1024 * 1024, built.stat().st_size
    with tarfile.open(built) as tar:
        names = tar.getnames()
    assert "MANIFEST.json" in names and "plugins/modules/owlat_containers.py" in names
    assert "community.docker" in (context / "_build/requirements.yml").read_text()
    assert re.search(r"^mitogen==", (context / "_build/requirements.txt").read_text(), re.M)
