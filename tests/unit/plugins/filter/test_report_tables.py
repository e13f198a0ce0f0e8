from ansible_collections.owlat.selfhost.plugins.filter.host_results import host_results
from ansible_collections.owlat.selfhost.plugins.filter.report_table import report_table
from ansible_collections.owlat.selfhost.plugins.filter.converged_lines import converged_lines
from ansible_collections.owlat.selfhost.plugins.filter.stack_summary_rows import stack_summary_rows
from ansible_collections.owlat.selfhost.plugins.filter.status_report import status_report


def health(*services):
    return {"changed": False, "services": [{"name": n, "healthy": ok, "seconds": s} for n, ok, s in services]}


def test_report_table_defaults_cuts_and_false_values():
    rows = [{"host": "h1", "snapshot_id": "0123456789abcdef", "gap": 0, "result": "ok"}, {"host": "h2", "result": ""}]
    columns = [["HOST", "host"], ["SNAP", "snapshot_id:8"], ["GAP", "gap", "-", "or"], ["KEPT", "gap"], ["RESULT", "result", "FAILED"]]
    assert report_table(rows, "%-4s %-8s %3s %4s %s", columns) == [
        "HOST SNAP     GAP KEPT RESULT",
        "h1   01234567   -    0 ok",
        "h2   -          -    - FAILED",
    ]
    assert report_table(rows[:1], "%s: %s", [["", "host"], ["", "result"]], header=False) == ["h1: ok"]


def test_host_results_one_row_per_host_in_order_missing_facts_empty():
    hostvars = {"a": {"owlat_backup_last": {"stack": "acme"}}, "b": {}, "c": {"owlat_backup_last": None}}
    assert host_results(hostvars, ["b", "a", "c"], "owlat_backup_last") == [{"host": "b"}, {"stack": "acme", "host": "a"}, {"host": "c"}]
    assert host_results(hostvars, ["a"], "owlat_backup_last", with_host=False) == [{"stack": "acme"}]


def test_summary_rows_of_one_stack_hosts_and_stacks_of_a_shared_host():
    current = {"name": "north", "release": "0.4.4", "url": "https://app.north.test"}
    hostvars = {
        "solo": {"owlat_stack_current": {"name": "owlat", "release": "0.4.3", "url": "https://app.solo.test"},
                 "owlat_convex_health": health(("convex", True, 12.4)), "owlat_app_health": {"skipped": True},
                 "owlat_proxy_health": health(("https-app", True, 0.2))},
        "m1": {"owlat_stacks": [], "owlat_proxy_health": health(("north/web", True, 0.1), ("north-eu/web", False, 3.0),
                                                                ("north/https-app", False, 2.0))},
        "north@m1": {"owlat_stack_machine": "m1", "owlat_stack_name": "north", "owlat_stack_current": current},
        "east@m1": {"owlat_stack_machine": "m1", "owlat_stack_name": "east", "owlat_stack_removed": {"changed": True}},
        "new": {"owlat_stack_name": "owlat", "owlat_stack_check_only": True},
        "broken": {},
    }
    rows = stack_summary_rows(hostvars, ["solo", "north@m1", "east@m1", "new", "broken"])
    assert [r["services"] for r in rows] == [
        "convex ok 12s, https-app ok",
        "web ok, https-app FAIL 2s",
        "removed (volumes and secrets kept)",
        "check mode: the stack would be created",
        "not deployed (failed or unreachable: see above)",
    ]
    assert rows[0] == {"host": "solo", "stack": "owlat", "release": "0.4.3", "url": "https://app.solo.test", "services": rows[0]["services"]}
    assert (rows[2]["stack"], rows[2]["release"], rows[4]["stack"]) == ("east", "-", "-")


def test_status_report_rows_problems_and_hosts_without_a_result():
    ok = {"rows": [{"stack": "acme", "services": "web ok"}], "problems": ["disk 91 %"], "stacks": ["acme"], "disks": [1], "docker": {"v": 1}}
    failed = {"failed": True, "msg": "owlat_status: no engine"}
    report = status_report({"a": {"owlat_status_result": ok}, "b": {"owlat_status_result": failed}, "c": {}}, ["a", "b", "c"], "T")
    assert report["generated_at"] == "T"
    assert report["rows"][0] == {"stack": "acme", "services": "web ok", "host": "a"}
    assert report["rows"][1]["services"] == "no status: owlat_status: no engine"
    assert report["rows"][2]["services"] == "no status: unreachable or failed, see above"
    assert report["problems"] == ["a: disk 91 %", "b: no status (unreachable or failed)", "c: no status (unreachable or failed)"]
    assert report["hosts"]["a"] == {"stacks": ["acme"], "disks": [1], "docker": {"v": 1}, "problems": ["disk 91 %"]}
    assert report["hosts"]["c"] == {"stacks": [], "disks": [], "docker": {}, "problems": []}


def test_stack_summary_rows_of_converged_hosts_come_from_their_record():
    fast = {"converged": True, "recorded_at": "2026-12-06T18:00:00Z",
            "stacks": {"north": {"release": "0.4.4", "url": "https://app.north.test", "running": 6},
                       "south": {"release": "0.4.3", "url": "https://app.south.test", "running": 5}}}
    solo = {"converged": True, "recorded_at": "T1", "stacks": {"owlat": {"release": "0.4.4", "url": "u", "running": 6}}}
    hostvars = {"m1": {"_owlat_converged": fast}, "north@m1": {"owlat_stack_machine": "m1", "owlat_stack_name": "north"},
                "south@m1": {"owlat_stack_machine": "m1", "owlat_stack_name": "south"},
                "solo": {"_owlat_converged": solo},
                "other": {"_owlat_converged": {"converged": False, "reasons": ["x"]}}}
    rows = stack_summary_rows(hostvars, ["north@m1", "south@m1", "solo", "other"])
    assert rows[0] == {"host": "north@m1", "stack": "north", "release": "0.4.4", "url": "https://app.north.test",
                       "services": "as the run of 2026-12-06T18:00:00Z left it (6 containers running)"}
    assert (rows[1]["stack"], rows[1]["release"]) == ("south", "0.4.3")
    assert (rows[2]["stack"], rows[2]["release"], rows[2]["url"]) == ("owlat", "0.4.4", "u")
    assert rows[3]["services"] == "not deployed (failed or unreachable: see above)"


def test_converged_lines_say_which_hosts_have_nothing_to_do_and_why_the_others_run():
    hostvars = {"a": {"_owlat_converged": {"converged": True, "recorded_at": "T1", "reasons": []}},
                "b": {"_owlat_converged": {"converged": False, "reasons": ["container x-web is gone", "file /f changed"]}},
                "c": {"_owlat_converged": {"failed": True, "msg": "python not found"}},
                "d": {}}
    assert converged_lines(hostvars, ["a", "b", "c", "d"]) == [
        "a: as its run of T1 left it, nothing to do",
        "b: full run: container x-web is gone; file /f changed",
        "c: full run: python not found",
        "d: full run: the check failed",
    ]
