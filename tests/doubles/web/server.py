# TEST DOUBLE of ghcr.io/wolvesdotink/web (Owlat web, Nuxt): follows contracts.md; not the real product.
"""Stand-in for the Owlat web server.

HOST / PORT (default 0.0.0.0:3000; OWLAT_DOUBLE_PORTS overrides for tests). Writes nothing to disk, so it
runs with a read-only root filesystem. SIGTERM / SIGINT: stop accepting, finish in-flight requests, exit 0
(40 s watchdog).
"""

from __future__ import annotations

import hmac
import html
import os
import signal
import sys
import time
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "common"))

from doublelib import JsonHandler, Stopper, ThreadingServer, double_ports, env_flag, log, serve, watchdog  # noqa: E402

C = "owlat-web"
VERSION = os.environ.get("DOUBLE_VERSION") or "0.4.4"
SHUTDOWN_WATCHDOG_S = 40


class Handler(JsonHandler):
    component = C
    quiet_paths = ("/api/instance-info",)

    def dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path
        if path == "/api/instance-info" and method in ("GET", "HEAD"):
            if env_flag("DOUBLE_FAIL_HEALTH"):
                return self.send_json(503, {"statusCode": 503, "message": "unhealthy (DOUBLE_FAIL_HEALTH)"})
            return self.send_json(200, {
                "name": os.environ.get("NUXT_PUBLIC_INSTANCE_NAME") or "Owlat",
                "convexUrl": os.environ.get("NUXT_PUBLIC_CONVEX_URL", ""),
                "convexSiteUrl": os.environ.get("NUXT_PUBLIC_CONVEX_SITE_URL", ""),
                "siteUrl": os.environ.get("NUXT_PUBLIC_SITE_URL", ""),
                "deploymentMode": os.environ.get("OWLAT_DEPLOYMENT_MODE") or "cloud",
            })
        if path.startswith("/api/internal/") or path == "/api/internal":
            expected = os.environ.get("INSTANCE_SECRET", "")
            given = self.headers.get("X-Instance-Secret", "")
            if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
                return self.send_json(401, {"statusCode": 401, "message": "Unauthorized"})
            if path == "/api/internal/status":
                return self.send_json(200, {"ok": True, "version": VERSION,
                                            "convexSiteUrlInternal": os.environ.get("NUXT_CONVEX_SITE_URL_INTERNAL", "")})
            return self.send_json(404, {"statusCode": 404, "message": f"Page not found: {path}"})
        if path == "/api/_double/slow" and method == "GET":  # double-only: lets tests hold a request in flight
            ms = int((parse_qs(url.query).get("ms") or ["1000"])[0])
            time.sleep(min(ms, 30000) / 1000.0)
            return self.send_json(200, {"slept_ms": ms})
        if path == "/" and method in ("GET", "HEAD"):
            site = html.escape(os.environ.get("NUXT_PUBLIC_SITE_URL", ""))
            body = (
                "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Owlat</title>"
                f"<meta name=\"generator\" content=\"owlat-web {VERSION} (test double)\"></head><body>"
                f"<div id=\"__nuxt\"><h1>Owlat</h1><p>Owlat web {VERSION} (test double)</p>"
                f"<p>Site: {site}</p></div></body></html>\n"
            )
            return self.send_text(200, body, "text/html; charset=utf-8")
        if path.startswith("/api/"):
            return self.send_json(404, {"statusCode": 404, "message": f"Page not found: {path}"})
        self.send_text(404, "<!DOCTYPE html><html><body><h1>404</h1><p>Page not found</p></body></html>\n",
                       "text/html; charset=utf-8")


def main() -> int:
    stopper = Stopper(C, graceful=(signal.SIGINT, signal.SIGTERM))
    host = os.environ.get("HOST") or "0.0.0.0"
    port_env = os.environ.get("PORT") or "3000"
    if not port_env.isdigit():
        log(C, f"PORT={port_env!r} is not a port number", "FATAL")
        return 1
    port = double_ports([int(port_env)])[0]
    for name in ("NUXT_PUBLIC_CONVEX_URL", "NUXT_PUBLIC_CONVEX_SITE_URL", "NUXT_PUBLIC_SITE_URL",
                 "NUXT_CONVEX_SITE_URL_INTERNAL", "OWLAT_DEPLOYMENT_MODE"):
        if not os.environ.get(name):
            log(C, f"{name} is not set", "WARN")
    if not os.environ.get("INSTANCE_SECRET"):
        log(C, "INSTANCE_SECRET is not set: /api/internal/* will refuse every request", "WARN")
    srv = ThreadingServer(host, port, Handler)
    serve([srv])
    log(C, f"Owlat web {VERSION} (test double) listening on http://{host}:{port}")
    stopper.wait()
    watchdog(C, SHUTDOWN_WATCHDOG_S)
    srv.shutdown()
    srv.server_close()  # waits for in-flight requests
    log(C, "all requests finished; exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
