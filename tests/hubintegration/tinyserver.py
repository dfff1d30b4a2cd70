"""A stand-in notebook server for the live-Hub tests: answers every GET with JSON.

``GET .../env`` returns its own environment, so a test can check what the "notebook
container" sees. Listens on the port of ``JUPYTERHUB_SERVICE_URL``.
"""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = {"path": self.path, "pid": os.getpid()}
        if self.path.rstrip("/").endswith("/env"):
            body["env"] = dict(os.environ)
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    port = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"]).port or 8888
    ThreadingHTTPServer(("127.0.0.1", port), _Handler).serve_forever()


if __name__ == "__main__":
    main()
