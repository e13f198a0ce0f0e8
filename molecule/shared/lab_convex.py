"""A stack's Convex backend and Redis as the tests reach them: from inside their containers on the lab host."""

import json
import time


def sh(host, cmd):
    out = host.run(cmd)
    # `docker exec` into a just-started container can lose runc's init handshake on a loaded 2-core machine
    # ("OCI runtime exec failed ... read init-p: connection reset by peer", exit 126; seen once in make test):
    # that is the exec, not the stack. Ask again; any other failure counts at once.
    for _ in range(3):
        if out.rc != 126 or "OCI runtime exec failed" not in (out.stdout + out.stderr):
            break
        time.sleep(2)
        out = host.run(cmd)
    assert out.rc == 0, f"{cmd}: {out.stderr or out.stdout}"
    return out.stdout


def admin_key(host, stack):
    return host.file(f"/etc/owlat/{stack}/convex-admin-key.env").content_string.strip().split("=", 1)[1]


def convex(host, stack, path, body=None, key=None):
    """Call the stack's backend API from inside its container (curl is in the image): (status, body)."""
    key = key or admin_key(host, stack)
    data = json.dumps(body) if body is not None else None
    cmd = (f"docker exec {stack}-convex curl -s -w '\\n%{{http_code}}' -H 'Authorization: Convex {key}' "
           f"-H 'Content-Type: application/json' http://127.0.0.1:3210{path}")
    if data is not None:
        cmd += " -X POST --data-binary '" + data.replace("'", "'\\''") + "'"
    out = sh(host, cmd).rsplit("\n", 1)
    return int(out[1]), out[0]


def query(host, stack, path, args):
    """A function of the lab's deployed functions (lab:list is a query, lab:put a mutation): its value."""
    status, body = convex(host, stack, "/api/query" if path.startswith("lab:l") else "/api/mutation",
                          {"path": path, "args": args, "format": "json"})
    assert status == 200, body
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return answer["value"]
