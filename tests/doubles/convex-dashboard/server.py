# TEST DOUBLE of ghcr.io/get-convex/convex-dashboard: follows contracts.md; not the real product.
"""Stand-in for the self-hosted Convex dashboard (port 6791, no authentication, as upstream).

NEXT_PUBLIC_DEPLOYMENT_URL is read at runtime and handed to the browser. NEXT_PUBLIC_ADMIN_KEY, if set, is
served to every visitor (as upstream) and logged loudly.
"""

from __future__ import annotations

import html
import json
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "common"))

from doublelib import JsonHandler, Stopper, ThreadingServer, double_ports, env_flag, log, serve  # noqa: E402

C = "convex-dashboard"
REVISION = os.environ.get("DOUBLE_VERSION") or "unknown"


class Handler(JsonHandler):
    component = C

    def dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return self.send_text(405, "Method Not Allowed\n")
        if path != "/":
            return self.send_text(404, "<!DOCTYPE html><html><body>404: This page could not be found.</body></html>\n",
                                  "text/html; charset=utf-8")
        if env_flag("DOUBLE_FAIL_HEALTH"):
            return self.send_text(503, "unhealthy (DOUBLE_FAIL_HEALTH)\n")
        url = os.environ.get("NEXT_PUBLIC_DEPLOYMENT_URL", "")
        config = {"deploymentUrl": url}
        if os.environ.get("NEXT_PUBLIC_ADMIN_KEY"):
            config["adminKey"] = os.environ["NEXT_PUBLIC_ADMIN_KEY"]  # served to every visitor, as upstream
        body = (
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Convex Dashboard</title>"
            f"<meta name=\"generator\" content=\"convex-dashboard {html.escape(REVISION)} (test double)\"></head><body>"
            f"<h1>Convex Dashboard</h1><p>Deployment: <a href=\"{html.escape(url)}\">{html.escape(url) or '(not set)'}"
            "</a></p><p>Paste an admin key to log in.</p>"
            f"<script id=\"__NEXT_DATA__\" type=\"application/json\">{html.escape(json.dumps(config), quote=False)}"
            "</script></body></html>\n"
        )
        self.send_text(200, body, "text/html; charset=utf-8")


def main() -> int:
    stopper = Stopper(C, graceful=(signal.SIGINT, signal.SIGTERM))
    port = double_ports([6791])[0]
    if not os.environ.get("NEXT_PUBLIC_DEPLOYMENT_URL"):
        log(C, "NEXT_PUBLIC_DEPLOYMENT_URL is not set: the browser will not know which deployment to open", "WARN")
    if os.environ.get("NEXT_PUBLIC_ADMIN_KEY"):
        for _ in range(3):
            log(C, "!!! NEXT_PUBLIC_ADMIN_KEY is set: the admin key is served to EVERY visitor of this dashboard, "
                   "which has no authentication. Unset it. !!!", "WARN")
    srv = ThreadingServer("0.0.0.0", port, Handler)
    serve([srv])
    log(C, f"dashboard {REVISION} (test double) listening on http://0.0.0.0:{port}")
    stopper.wait()
    srv.shutdown()
    srv.server_close()
    log(C, "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
