"""Small helpers the demo services share: a JSON HTTP server and a JSON HTTP client.

Standard library only (plus pg8000 for PostgreSQL), so the demo runs on any Python 3.
"""
import http.server
import json
import os
import ssl
import urllib.request


def serve(handlers, port=0, host="127.0.0.1", tls=None):
    """Serves `handlers` ({(method, path prefix): fn(path, body) -> (status, obj|None)}) on
    `host`:`port`, over HTTPS when `tls` is (certificate file, key file), prints the port on
    stdout (the runner waits for it) and never returns."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # head and body are two writes: no delayed-ACK stall

        def log_message(self, *args):
            pass

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            for (method, prefix), fn in handlers.items():
                if self.command == method and self.path.startswith(prefix):
                    status, obj = fn(self.path, body)
                    break
            else:
                status, obj = 404, {"error": "not found"}
            self.send_response(status)
            if obj is None:
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            out = json.dumps(obj).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_DELETE = handle_any

    srv = http.server.ThreadingHTTPServer((host, port), Handler)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


def call(method, url, obj=None):
    """One JSON request (HTTPS verified against the certificates of SSL_CERT_FILE); returns
    (status, decoded body or None)."""
    data = json.dumps(obj).encode() if obj is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else None)


def env(name):
    return os.environ[name]
