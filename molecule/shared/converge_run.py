"""Run the scenario's converge playbook (or another playbook) again from a verifier test."""

import os
import re
import subprocess


def run_playbook(playbook, *args, timeout=900):
    """ansible-playbook <args> <playbook> on the scenario's inventory; returns (rc, uncoloured output).

    ``playbook`` is a path, or a collection playbook name such as owlat.selfhost.backup.
    """
    run = subprocess.run(
        ["ansible-playbook", *args, "-i", os.environ["MOLECULE_INVENTORY_FILE"], playbook],
        capture_output=True, text=True, timeout=timeout, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"),
    )
    return run.returncode, re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)


def run_converge(*args, timeout=900):
    """ansible-playbook <args> on the scenario's inventory and converge.yml; returns (rc, uncoloured output)."""
    return run_playbook(os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml"), *args, timeout=timeout)


def recap(out):
    """{host: {ok, changed, failed, ...}} from a play recap."""
    stats = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", out, re.M):
        stats[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return stats
