#!/usr/bin/env python3
"""A fake Kubernetes API server for the Pod client tests, on loopback, stdlib only.

Speaks the core/v1 Pod endpoints as documented, answering errors as `Status` objects:
  POST   /api/v1/namespaces/{ns}/pods          201 the Pod (status.phase Pending);
                                               409 AlreadyExists; 422 Invalid; 415 non-JSON
  GET    /api/v1/namespaces/{ns}/pods/{name}   200 the Pod; 404 NotFound
  DELETE /api/v1/namespaces/{ns}/pods/{name}   200 the Pod (deletionTimestamp set), then gone; 404 NotFound
  POST   /api/v1/namespaces/{ns}/secrets       201 the Secret (stringData folded into base64 data); 409 AlreadyExists
  PUT    /api/v1/namespaces/{ns}/secrets/{name} 200 the Secret replaced; 404 NotFound
  GET    /api/v1/namespaces/{ns}/secrets/{name} 200 the Secret; 404 NotFound
  DELETE /api/v1/namespaces/{ns}/secrets/{name} 200, then gone; 404 NotFound
Every API call needs `Authorization: Bearer --token` (401 Unauthorized otherwise).
A created Pod must have apiVersion v1, kind Pod, a DNS-1123 metadata.name, at least one
container with a name and an image, and spec.restartPolicy one of Always, OnFailure, Never.

Test control (no token needed):
  GET  /_fake/requests                 every API request: method, path, headers (lower-case), json body
  POST /_fake/pods/{ns}/{name}/phase   {"phase": "Running"} moves a Pod along
Prints "READY <port>" once listening; --tls CERT KEY serves HTTPS; exits when stdin closes.
"""
import argparse, base64, json, re, ssl, sys, threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PODS = {}  # (namespace, name) -> pod
SECRETS = {}  # (namespace, name) -> secret
REQUESTS = []
LOCK = threading.Lock()
ARGS = None
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
UID = [0]


def status(code, reason, message):
    return code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": message, "reason": reason, "code": code}


def invalid_reason(pod):
    if not isinstance(pod, dict):
        return "the body is not an object"
    if pod.get("apiVersion") != "v1":
        return "apiVersion: Invalid value: must be v1"
    if pod.get("kind") != "Pod":
        return "kind: Invalid value: must be Pod"
    name = (pod.get("metadata") or {}).get("name")
    if not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        return "metadata.name: Invalid value: %r: a lowercase RFC 1123 subdomain is required" % (name,)
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return "spec: Required value"
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return "spec.containers: Required value"
    for i, c in enumerate(containers):
        if not isinstance(c, dict) or not c.get("name"):
            return "spec.containers[%d].name: Required value" % i
        if not isinstance(c.get("image"), str) or not c["image"]:
            return "spec.containers[%d].image: Required value" % i
    if spec.get("restartPolicy", "Always") not in ("Always", "OnFailure", "Never"):
        return "spec.restartPolicy: Unsupported value: %r" % spec.get("restartPolicy")
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, payload):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["_fake"]:
            return self.fake_control(parts[1:], raw)
        record = {"method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": None}
        if raw:
            try:
                record["body"] = json.loads(raw)
            except ValueError:
                record["body"] = {"_unparsed": raw.decode("latin-1")}
        with LOCK:
            REQUESTS.append(record)
        if self.headers.get("Authorization") != "Bearer " + ARGS.token:
            return self.reply(*status(401, "Unauthorized", "Unauthorized"))
        if len(parts) >= 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
            return self.secrets(parts[3], parts[5] if len(parts) == 6 else None, raw)
        if len(parts) < 5 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] != "pods":
            return self.reply(*status(404, "NotFound", "the server could not find the requested resource"))
        namespace = parts[3]
        if len(parts) == 5 and self.command == "POST":
            return self.create(namespace, raw)
        if len(parts) == 6 and self.command == "GET":
            return self.get(namespace, parts[5])
        if len(parts) == 6 and self.command == "DELETE":
            return self.delete(namespace, parts[5])
        return self.reply(*status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource"))

    def create(self, namespace, raw):
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return self.reply(*status(415, "UnsupportedMediaType", "the body of the request was in an unknown format"))
        try:
            pod = json.loads(raw)
        except ValueError:
            return self.reply(*status(400, "BadRequest", "the body is not JSON"))
        reason = invalid_reason(pod)
        if reason:
            return self.reply(*status(422, "Invalid", 'Pod "%s" is invalid: %s' % ((pod.get("metadata") or {}).get("name") if isinstance(pod, dict) else "", reason)))
        name = pod["metadata"]["name"]
        with LOCK:
            if (namespace, name) in PODS:
                return self.reply(*status(409, "AlreadyExists", 'pods "%s" already exists' % name))
            UID[0] += 1
            pod["metadata"]["namespace"] = namespace
            pod["metadata"]["uid"] = "uid-%d" % UID[0]
            pod["metadata"]["creationTimestamp"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            pod["status"] = {"phase": "Pending"}
            PODS[(namespace, name)] = pod
            return self.reply(201, pod)

    def secrets(self, namespace, name, raw):
        if self.command in ("POST", "PUT"):
            try:
                secret = json.loads(raw)
            except ValueError:
                return self.reply(*status(400, "BadRequest", "the body is not JSON"))
            meta = secret.get("metadata") or {} if isinstance(secret, dict) else {}
            if not isinstance(secret, dict) or secret.get("kind") != "Secret" or secret.get("apiVersion") != "v1" \
                    or not isinstance(meta.get("name"), str) or not DNS_SUBDOMAIN.match(meta["name"]) \
                    or (name is not None and meta["name"] != name):
                return self.reply(*status(422, "Invalid", "Secret is invalid"))
            data = dict(secret.get("data") or {})
            for key, value in (secret.pop("stringData", None) or {}).items():
                data[key] = base64.b64encode(value.encode()).decode()
            secret["data"] = data
            with LOCK:
                key = (namespace, meta["name"])
                if self.command == "POST" and key in SECRETS:
                    return self.reply(*status(409, "AlreadyExists", 'secrets "%s" already exists' % meta["name"]))
                if self.command == "PUT" and key not in SECRETS:
                    return self.reply(*status(404, "NotFound", 'secrets "%s" not found' % meta["name"]))
                SECRETS[key] = secret
            return self.reply(201 if self.command == "POST" else 200, secret)
        if name is None:
            return self.reply(*status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource"))
        with LOCK:
            secret = SECRETS.get((namespace, name)) if self.command == "GET" else SECRETS.pop((namespace, name), None) if self.command == "DELETE" else "?"
        if secret == "?":
            return self.reply(*status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource"))
        if secret is None:
            return self.reply(*status(404, "NotFound", 'secrets "%s" not found' % name))
        return self.reply(200, secret)

    def get(self, namespace, name):
        with LOCK:
            pod = PODS.get((namespace, name))
        if pod is None:
            return self.reply(*status(404, "NotFound", 'pods "%s" not found' % name))
        return self.reply(200, pod)

    def delete(self, namespace, name):
        with LOCK:
            pod = PODS.pop((namespace, name), None)
        if pod is None:
            return self.reply(*status(404, "NotFound", 'pods "%s" not found' % name))
        pod["metadata"]["deletionTimestamp"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self.reply(200, pod)

    def fake_control(self, parts, raw):
        with LOCK:
            if parts == ["requests"]:
                return self.reply(200, REQUESTS)
            if len(parts) == 4 and parts[0] == "pods" and parts[3] == "phase":
                pod = PODS.get((parts[1], parts[2]))
                if pod is None:
                    return self.reply(*status(404, "NotFound", "no such pod"))
                pod["status"]["phase"] = json.loads(raw)["phase"]
                return self.reply(200, pod)
        return self.reply(*status(404, "NotFound", "no such control endpoint"))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--token", required=True)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ARGS = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if ARGS.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(ARGS.tls[0], ARGS.tls[1])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print("READY", server.server_address[1], flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), server.shutdown()), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
