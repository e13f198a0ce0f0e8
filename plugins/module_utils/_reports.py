# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""The collection's fleet tables (site.yml's summary, status.yml, backup.yml, upgrade.yml) built from the hosts'
results in one tested place, for the filters report_table, host_results, stack_summary_rows and status_report."""

from __future__ import annotations


def _get(mapping, key, default=None):
    try:
        value = mapping[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


def _cell(row, column):
    title, key, default = column[0], column[1], column[2] if len(column) > 2 else "-"
    falsy = len(column) > 3 and column[3] == "or"
    key, cut = (key.split(":", 1) + [""])[:2]
    value = _get(row, key)
    if value is None or value == "" or (falsy and not value):
        return default
    return str(value)[: int(cut)] if cut else value


def report_table(rows, fmt, columns, header=True):
    lines = [fmt % tuple(c[0] for c in columns)] if header else []
    for row in rows or []:
        lines.append(fmt % tuple(_cell(row, c) for c in columns))
    return lines


def host_results(hostvars, hosts, fact, with_host=True):
    rows = []
    for host in hosts:
        result = dict(_get(hostvars[host], fact, {}) or {})
        if with_host:
            result["host"] = host
        rows.append(result)
    return rows


def _services(result):
    return list(_get(result or {}, "services", []) or [])


def converged_lines(hostvars, hosts):
    lines = []
    for host in hosts:
        fast = _get(hostvars[host], "_owlat_converged", {})
        if _get(fast, "converged", False):
            lines.append("%s: as its run of %s left it, nothing to do" % (host, _get(fast, "recorded_at", "?")))
        else:
            reasons = _get(fast, "reasons") or [_get(fast, "msg", "the check failed")]
            lines.append("%s: full run: %s" % (host, "; ".join(str(r) for r in reasons)))
    return lines


def _converged_row(host, hv, fast):
    """The row of a stack whose host the fast path found as its last complete run left it (owlat_converged)."""
    recorded = _get(fast, "stacks", {})
    name = _get(hv, "owlat_stack_name") if _get(hv, "owlat_stack_machine") else None
    if name is None and len(recorded) == 1:
        name = list(recorded)[0]
    row = _get(recorded, name, {})
    services = "as the run of %s left it (%s containers running)" % (
        _get(fast, "recorded_at", "?"), _get(row, "running", "?"))
    return {"host": host, "stack": name or "-", "release": _get(row, "release", "-"), "url": _get(row, "url", "-"),
            "services": services}


def stack_summary_rows(hostvars, hosts):
    rows = []
    for host in hosts:
        hv = hostvars[host]
        fast = _get(hostvars[_get(hv, "owlat_stack_machine", host)], "_owlat_converged", {})
        if _get(fast, "converged", False):
            rows.append(_converged_row(host, hv, fast))
            continue
        current = _get(hv, "owlat_stack_current", {})
        stack = _get(current, "name", _get(hv, "owlat_stack_name", "-"))
        checks = _services(_get(hv, "owlat_convex_health")) + _services(_get(hv, "owlat_app_health"))
        machine = _get(hv, "owlat_stack_machine")
        if machine:
            prefix = stack + "/"
            checks += [dict(s, name=s["name"][len(prefix):])
                       for s in _services(_get(hostvars[machine], "owlat_proxy_health")) if s["name"].startswith(prefix)]
        else:
            checks += _services(_get(hv, "owlat_proxy_health"))
        cells = ["%s %s%s" % (s["name"], "ok" if s.get("healthy") else "FAIL",
                              " %ds" % round(s["seconds"]) if (s.get("seconds") or 0) >= 1 else "") for s in checks]
        if cells:
            services = ", ".join(cells)
        elif _get(hv, "owlat_stack_removed") is not None:
            services = "removed (volumes and secrets kept)"
        elif _get(hv, "owlat_stack_check_only", False):
            services = "check mode: the stack would be created"
        else:
            services = "not deployed (failed or unreachable: see above)"
        rows.append({"host": host, "stack": stack, "release": _get(current, "release", "-"),
                     "url": _get(current, "url", "-"), "services": services})
    return rows


def status_report(hostvars, hosts, generated_at):
    rows, problems, per_host = [], [], {}
    for host in hosts:
        result = _get(hostvars[host], "owlat_status_result", {}) or {}
        if "rows" in result:
            rows.extend(dict(row, host=host) for row in result["rows"])
        else:
            rows.append({"host": host, "stack": "-", "release": "-", "backup": "-", "disk": "-", "tls": "-",
                         "services": "no status: " + str(_get(result, "msg", "unreachable or failed, see above"))})
        problems.extend("%s: %s" % (host, p) for p in _get(result, "problems", ["no status (unreachable or failed)"]))
        per_host[host] = {"stacks": _get(result, "stacks", []), "disks": _get(result, "disks", []),
                          "docker": _get(result, "docker", {}), "problems": _get(result, "problems", [])}
    return {"generated_at": generated_at, "rows": rows, "problems": problems, "hosts": per_host}
