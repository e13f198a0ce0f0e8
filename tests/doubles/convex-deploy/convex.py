# TEST DOUBLE of ghcr.io/wolvesdotink/convex-deploy (the `convex` CLI): follows contracts.md; not the real product.
"""A tiny `convex` CLI for the convex-backend double.

  convex deploy [--url URL] [--admin-key KEY] [-y] [--dry-run]
  convex env set [--] NAME VALUE      (also NAME=VALUE)
  convex env get NAME | convex env remove NAME | convex env list

URL / admin key come from --url / --admin-key, else CONVEX_SELF_HOSTED_URL / CONVEX_SELF_HOSTED_ADMIN_KEY.
The deployed functions version is DOUBLE_VERSION (default 0.4.4).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

CLI_VERSION = "1.43.0"
FUNCTIONS_VERSION = os.environ.get("DOUBLE_VERSION") or "0.4.4"
MODULES = ("schema.js", "http.js", "seed.js", "users.js", "lab.js", "emails.js", "campaigns.js")


class CliError(Exception):
    pass


def say(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


class Client:
    def __init__(self, url: str, key: str, retries: int = 3):
        self.url, self.key, self.retries = url.rstrip("/"), key, retries

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Convex {self.key}")
        req.add_header("Content-Type", "application/json")
        req.add_header("Convex-Client", f"npm-cli-{CLI_VERSION}")
        last = None
        for attempt in range(self.retries):
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    raw = resp.read()
                return json.loads(raw) if raw.strip() else None
            except urllib.error.HTTPError as exc:
                raw = exc.read()
                try:
                    err = json.loads(raw)
                    code, message = err.get("code", "?"), err.get("message", "")
                except (ValueError, AttributeError):
                    code, message = "?", raw.decode(errors="replace").strip()
                if exc.code in (401, 403):
                    raise CliError(
                        f"the Convex backend at {self.url} rejected the admin key ({exc.code} {code}: {message}). "
                        "Check CONVEX_SELF_HOSTED_ADMIN_KEY (mint one with ./generate_admin_key.sh in the backend "
                        "container; a new INSTANCE_SECRET invalidates old keys).") from None
                raise CliError(f"{method} {path} failed: {exc.code} {code}: {message}") from None
            except (urllib.error.URLError, OSError) as exc:
                last = getattr(exc, "reason", exc)
                if attempt + 1 < self.retries:
                    time.sleep(0.5 * (attempt + 1))
        raise CliError(f"could not reach the Convex backend at {self.url}: {last}")


def resolve(args) -> Client:
    url = args.url or os.environ.get("CONVEX_SELF_HOSTED_URL")
    key = args.admin_key or os.environ.get("CONVEX_SELF_HOSTED_ADMIN_KEY")
    missing = [n for n, v in (("CONVEX_SELF_HOSTED_URL (or --url)", url),
                              ("CONVEX_SELF_HOSTED_ADMIN_KEY (or --admin-key)", key)) if not v]
    if missing:
        raise CliError("missing " + " and ".join(missing) + ": a self-hosted deployment needs both")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"CONVEX_SELF_HOSTED_URL {url!r} must start with http:// or https://")
    return Client(url, key)


def deploy(args) -> int:
    client = resolve(args)
    say(f"- Deploying Owlat functions {FUNCTIONS_VERSION} to {client.url}")
    current = client.call("POST", "/api/get_config_hashes", {})
    say(f"- Current functions version: {current.get('functionsVersion') or 'none'}")
    if os.environ.get("DOUBLE_FAIL_HEALTH", "").lower() in ("true", "1", "yes"):
        raise CliError("Hit an error while evaluating your functions (DOUBLE_FAIL_HEALTH=true in this test "
                       "double): nothing was deployed")
    config = {"functionsVersion": FUNCTIONS_VERSION,
              "modules": [{"path": m, "source": f"// Owlat {FUNCTIONS_VERSION} {m} (test double)\n"} for m in MODULES]}
    evaluated = client.call("POST", "/api/deploy2/evaluate_push", config)
    say(f"- Evaluated {evaluated['modules']} modules (config hash {evaluated['configHash'][:12]})")
    started = client.call("POST", "/api/deploy2/start_push",
                          dict(config, configHash=evaluated["configHash"], dryRun=args.dry_run))
    push_id = started["pushId"]
    say(f"- Push {push_id} started; waiting for schema validation")
    deadline = time.time() + 60
    while True:
        state = client.call("POST", "/api/deploy2/wait_for_schema", {"pushId": push_id, "timeoutMs": 10000})
        if state.get("type") == "complete":
            break
        if state.get("type") == "failed" or time.time() > deadline:
            raise CliError(f"schema validation did not complete: {state}")
        time.sleep(0.5)
    finished = client.call("POST", "/api/deploy2/finish_push", {"pushId": push_id, "dryRun": args.dry_run})
    client.call("POST", "/api/deploy2/report_push_completed", {"pushId": push_id})
    if args.dry_run:
        say(f"✔ Dry run: would deploy functions {finished['functionsVersion']} to {client.url}")
    else:
        what = "Deployed" if finished.get("changed") else "Functions unchanged; re-deployed"
        say(f"✔ {what} Convex functions {finished['functionsVersion']} to {client.url}")
    return 0


def env_cmd(args) -> int:
    client = resolve(args)
    if args.env_action == "list":
        env = client.call("GET", "/api/v1/list_environment_variables")["environmentVariables"]
        for name in sorted(env):
            print(f"{name}={env[name]}")
        return 0
    if args.env_action == "get":
        env = client.call("GET", "/api/v1/list_environment_variables")["environmentVariables"]
        if args.name not in env:
            raise CliError(f"Environment variable {args.name} not found.")
        print(env[args.name])
        return 0
    if args.env_action == "set":
        name, value = args.name, args.value
        if value is None:
            if "=" not in name:
                raise CliError("usage: convex env set [--] NAME VALUE (or NAME=VALUE)")
            name, value = name.split("=", 1)
        client.call("POST", "/api/v1/update_environment_variables", {"changes": [{"name": name, "value": value}]})
        say(f"✔ Successfully set {name}")
        return 0
    client.call("POST", "/api/v1/update_environment_variables", {"changes": [{"name": args.name, "value": None}]})
    say(f"✔ Unset {args.name}")
    return 0


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="deployment URL (default: $CONVEX_SELF_HOSTED_URL)")
    common.add_argument("--admin-key", help="admin key (default: $CONVEX_SELF_HOSTED_ADMIN_KEY)")
    p = argparse.ArgumentParser(prog="convex", description="convex CLI (test double)")
    p.add_argument("--version", action="version", version=CLI_VERSION)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("deploy", parents=[common], help="deploy the Owlat functions")
    d.add_argument("-y", "--yes", action="store_true")
    d.add_argument("--dry-run", action="store_true")
    d.add_argument("--typecheck", choices=("enable", "try", "disable"))
    d.add_argument("--codegen", choices=("enable", "disable"))
    e = sub.add_parser("env", help="deployment environment variables")
    esub = e.add_subparsers(dest="env_action", required=True)
    s = esub.add_parser("set", parents=[common])
    s.add_argument("name")
    s.add_argument("value", nargs="?")
    g = esub.add_parser("get", parents=[common])
    g.add_argument("name")
    for alias in ("remove", "unset", "rm"):
        r = esub.add_parser(alias, parents=[common])
        r.add_argument("name")
    esub.add_parser("list", parents=[common])
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return deploy(args) if args.command == "deploy" else env_cmd(args)
    except CliError as exc:
        say(f"✖ Error: {exc}")
        return 1
    except (KeyError, TypeError, ValueError) as exc:
        say(f"✖ Error: unexpected answer from the backend: {exc!r}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
