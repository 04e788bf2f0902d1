#!/usr/bin/env python3
"""A small HTTP(S) peer for the HTTP client tests, on loopback only.

GET/POST/... /echo    -> JSON {method, path, headers, body}
/slow?ms=N            -> waits N ms, then 200
/max-in-flight        -> the most /slow requests seen at once
/bytes?n=N            -> N bytes of 'x'
/status/NNN           -> that status
Prints "READY <port>" once listening. --tls CERT KEY serves HTTPS.
"""
import json, ssl, sys, time, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs


IN_FLIGHT = {"now": 0, "max": 0}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path == "/slow":
            with LOCK:
                IN_FLIGHT["now"] += 1
                IN_FLIGHT["max"] = max(IN_FLIGHT["max"], IN_FLIGHT["now"])
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
            with LOCK:
                IN_FLIGHT["now"] -= 1
            return self.reply(200, b"slow done")
        if url.path == "/max-in-flight":
            return self.reply(200, str(IN_FLIGHT["max"]).encode())
        if url.path == "/bytes":
            return self.reply(200, b"x" * int(query.get("n", ["0"])[0]))
        if url.path.startswith("/status/"):
            return self.reply(int(url.path.split("/")[2]), b"status")
        payload = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("latin-1"),
        }
        self.reply(200, json.dumps(payload).encode(), {"X-Echo": "yes", "Content-Type": "application/json"})

    def reply(self, status, data, headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print("READY", server.server_address[1], flush=True)
    # Exit when the test process closes our stdin.
    threading.Thread(target=lambda: (sys.stdin.read(), server.shutdown()), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
