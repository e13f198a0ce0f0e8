"""The matrix tool's closing summary names why a step failed: a CI log is read from its end, and a red step without
its reason (a Molecule scenario, the lab's storage) cost a whole CI round to find."""

import json

import matrix


def test_excerpt_keeps_the_failure_lines_and_the_tail_once():
    out = "\n".join(["PLAY [x]"] + ["ok: [h%d]" % i for i in range(50)] + [
        "fatal: [h1]: FAILED! => {\"msg\": \"backend did not answer\"}",
        "FAILED molecule/x/tests/test_a.py::test_b - AssertionError: 61 > 60",
        "\x1b[31mlab: S3 does not answer (0: curl: (7))\x1b[0m",
    ] + ["ok: [h%d]" % i for i in range(50, 60)] + ["make: *** [Makefile:1: x] Error 1"])
    excerpt = matrix.failure_excerpt(out, tail=5)
    assert excerpt[:3] == ["fatal: [h1]: FAILED! => {\"msg\": \"backend did not answer\"}",
                           "FAILED molecule/x/tests/test_a.py::test_b - AssertionError: 61 > 60",
                           "lab: S3 does not answer (0: curl: (7))"]
    assert excerpt[3:] == ["make: *** [Makefile:1: x] Error 1", "ok: [h56]", "ok: [h57]", "ok: [h58]", "ok: [h59]"]
    assert "ok: [h3]" not in excerpt


def test_show_prints_the_excerpt_of_a_failed_step(tmp_path, monkeypatch, capsys):
    legs = tmp_path / "legs.json"
    legs.write_text(json.dumps({"legs": [{"name": "core-x", "venv": ".venvs/x", "steps": ["unit", "molecule:stack"]}]}))
    monkeypatch.setattr(matrix, "LEGS_FILE", str(legs))
    monkeypatch.setattr(matrix, "RESULTS", str(tmp_path / "results"))
    matrix.write_step("core-x", "unit", {"step": "unit", "outcome": {"result": "pass", "seconds": 1}})
    matrix.write_step("core-x", "molecule:stack", {"step": "molecule:stack", "outcome": {
        "result": "fail", "seconds": 2, "excerpt": ["fatal: [h1]: FAILED! => backend"]}})
    matrix.cmd_show()
    out = capsys.readouterr().out
    assert "core-x molecule:stack failed; its lines that say why:\n  | fatal: [h1]: FAILED! => backend" in out
    assert "core-x unit failed" not in out
