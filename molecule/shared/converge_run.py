"""Run the scenario's converge playbook again from a verifier test (check mode, -vvv, extra vars ...)."""

import os
import re
import subprocess


def run_converge(*args, timeout=900):
    """ansible-playbook <args> on the scenario's inventory and converge.yml; returns (rc, uncoloured output)."""
    run = subprocess.run(
        [
            "ansible-playbook", *args,
            "-i", os.environ["MOLECULE_INVENTORY_FILE"],
            os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml"),
        ],
        capture_output=True, text=True, timeout=timeout, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"),
    )
    return run.returncode, re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)
