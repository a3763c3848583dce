"""A load balancer target for tests, run inside a test's network namespace:

    python3 lbtarget.py NAME PORT STATE_DIR

GET /slow?s=N answers after N seconds; /health answers the status in STATE_DIR/NAME.health
(200 if there is none); everything else answers JSON: its name, the path, the headers."""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

NAME, PORT, STATE = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        status = 200
        if url.path == "/health":
            try:
                status = int((STATE / f"{NAME}.health").read_text().strip())
            except (OSError, ValueError):
                status = 200
        elif url.path == "/slow":
            time.sleep(float(parse_qs(url.query).get("s", ["1"])[0]))
        body = json.dumps({"name": NAME, "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
