#!/usr/bin/env python3
"""A fake GitHub REST API for the GitHub App client tests, on loopback, stdlib only.

It checks what a real GitHub checks, as documented:
  * App calls (Authorization: Bearer <JWT>): header alg RS256, the RS256 signature (verified by
    the `openssl` command with --public-key), iss == --app-id, iat <= now + 60 s (drift),
    exp > now, exp - iat <= 600 s (GitHub: "no more than 10 minutes into the future").
  * Every call: Accept: application/vnd.github+json, X-GitHub-Api-Version: 2022-11-28, a
    User-Agent (GitHub answers 403 without one).
  * Installation calls (Authorization: token|Bearer <installation token>): a token it issued,
    not expired by its clock, not revoked, for the installation that owns the resource.

Endpoints:
  GET  /app                                              the App (JWT)
  POST /app/installations/{id}/access_tokens             201 {token, expires_at, permissions} (JWT)
  POST /orgs/{org}/actions/runners/generate-jitconfig    201 {runner, encoded_jit_config}
  POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig
  GET  /repos/{owner}/{repo}/actions/jobs/{id}          {id, status, conclusion} (set by POST /_fake/jobs/{owner}/{repo}/{id})
  POST /repos/{owner}/{repo}/check-runs                  201 {id, name, head_sha, status, conclusion}
  GET  /_fake/requests       every request seen: method, path, headers (lower-case), json body, jwt claims
  GET  /_fake/stats          {"token_requests": {installation id: count}}
  POST /_fake/clock          {"now": unix seconds} sets the fake's clock (default: real time)
  POST /_fake/revoke         revokes every issued token (the next installation call gets 401)
  POST /_fake/config         {"token_ttl_seconds": N, "token_delay_ms": N}

Installation 404 does not exist. Organisations and repositories belong to the installation
given by --owner NAME=ID (repeatable); unknown owners belong to every installation.
Prints "READY <port>" once listening; exits when stdin closes.
"""
import argparse, base64, json, os, subprocess, sys, tempfile, threading, time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = {
    "requests": [],
    "token_requests": {},
    "tokens": {},  # token -> {"installation": id, "expires": unix, "revoked": bool}
    "clock": None,
    "token_ttl_seconds": 3600,
    "token_delay_ms": 0,
    "jobs": {},  # "owner/repo/job_id" -> {"status": ..., "conclusion": ...}; unknown jobs are 404
    "runners": {},  # (scope, name) -> id
    "next_runner_id": 1000,
}
LOCK = threading.Lock()
ARGS = None


def now():
    return STATE["clock"] if STATE["clock"] is not None else int(time.time())


def b64url_decode(text):
    if any(c in text for c in "+/="):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_rs256(signing_input, signature):
    """The openssl command verifies with the public key the test wrote."""
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(signature)
        path = f.name
    try:
        result = subprocess.run(["openssl", "dgst", "-sha256", "-verify", ARGS.public_key, "-signature", path],
                                input=signing_input, capture_output=True)
        return result.returncode == 0 and b"Verified OK" in result.stdout
    finally:
        os.unlink(path)


def check_jwt(token):
    """Returns (claims, None) or (None, reason)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None, "A JSON web token could not be decoded"
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except Exception:
        return None, "A JSON web token could not be decoded"
    if header.get("alg") != "RS256":
        return None, "'alg' must be RS256"
    if not verify_rs256((parts[0] + "." + parts[1]).encode(), signature):
        return None, "A JSON web token could not be decoded (signature)"
    if str(claims.get("iss")) != ARGS.app_id:
        return None, "'Issuer' claim ('iss') must be an Integer or String (wrong app)"
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        return None, "'iat' and 'exp' must be integers"
    t = now()
    if iat > t + 60:
        return None, "'Issued at' claim ('iat') must be an Integer representing a time in the past"
    if exp <= t:
        return None, "'Expiration time' claim ('exp') is too far in the past"
    if exp - iat > 600:
        return None, "'Expiration time' claim ('exp') is too far in the future"
    return claims, None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, message):
        self.reply(status, {"message": message, "documentation_url": "https://docs.github.com/rest", "status": str(status)})

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["_fake"]:
            return self.fake_control(parts[1:], raw)

        record = {"method": self.command, "path": self.path,
                  "headers": {k.lower(): v for k, v in self.headers.items()}, "body": None, "jwt_claims": None}
        if raw:
            try:
                record["body"] = json.loads(raw)
            except ValueError:
                record["body"] = {"_unparsed": raw.decode("latin-1")}
        with LOCK:
            STATE["requests"].append(record)

        if self.headers.get("Accept") != "application/vnd.github+json":
            return self.error(415, "Accept must be application/vnd.github+json")
        if self.headers.get("X-GitHub-Api-Version") != "2022-11-28":
            return self.error(400, "X-GitHub-Api-Version must be 2022-11-28")
        if not self.headers.get("User-Agent"):
            return self.error(403, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header")
        scheme, _, credential = (self.headers.get("Authorization") or "").partition(" ")

        if parts[:1] == ["app"]:
            if scheme != "Bearer":
                return self.error(401, "A JSON web token could not be decoded")
            claims, reason = check_jwt(credential)
            if reason:
                return self.error(401, reason)
            record["jwt_claims"] = claims
            if parts == ["app"] and self.command == "GET":
                return self.reply(200, {"id": int(ARGS.app_id) if ARGS.app_id.isdigit() else 1, "slug": "tenki-test", "name": "Tenki test"})
            if len(parts) == 4 and parts[1] == "installations" and parts[3] == "access_tokens" and self.command == "POST":
                return self.access_token(parts[2])
            return self.error(404, "Not Found")

        if scheme not in ("token", "Bearer"):
            return self.error(401, "Requires authentication")
        with LOCK:
            issued = STATE["tokens"].get(credential)
        if issued is None or issued["revoked"] or issued["expires"] <= now():
            return self.error(401, "Bad credentials")
        if self.command == "POST" and parts[-3:] == ["actions", "runners", "generate-jitconfig"]:
            if len(parts) == 5 and parts[0] == "orgs":
                return self.jitconfig(issued, parts[1], "org:" + parts[1], record["body"])
            if len(parts) == 6 and parts[0] == "repos":
                return self.jitconfig(issued, parts[1], "repo:" + parts[1] + "/" + parts[2], record["body"])
        if self.command == "GET" and len(parts) == 6 and parts[0] == "repos" and parts[3:5] == ["actions", "jobs"]:
            with LOCK:
                job = STATE["jobs"].get("/".join([parts[1], parts[2], parts[5]]))
            if job is None:
                return self.error(404, "Not Found")
            return self.reply(200, {"id": int(parts[5]), "status": job["status"], "conclusion": job["conclusion"]})
        if self.command == "POST" and len(parts) == 4 and parts[0] == "repos" and parts[3] == "check-runs":
            body = record["body"] or {}
            missing = [f for f in ("name", "head_sha") if not body.get(f)]
            if missing:
                return self.error(422, "Invalid request: missing " + ", ".join(missing))
            with LOCK:
                STATE.setdefault("check_runs", 0)
                STATE["check_runs"] += 1
                number = STATE["check_runs"]
            return self.reply(201, {"id": number, "name": body["name"], "head_sha": body["head_sha"],
                                    "status": body.get("status", "queued"), "conclusion": body.get("conclusion")})
        return self.error(404, "Not Found")

    def access_token(self, installation):
        if not installation.isdigit():
            return self.error(404, "Not Found")
        with LOCK:
            STATE["token_requests"][installation] = STATE["token_requests"].get(installation, 0) + 1
            count = sum(STATE["token_requests"].values())
            delay = STATE["token_delay_ms"]
        if delay:
            time.sleep(delay / 1000)
        if installation == "404":
            return self.error(404, "Not Found")
        token = "ghs_fake%04d%s" % (count, os.urandom(8).hex())
        expires = now() + STATE["token_ttl_seconds"]
        with LOCK:
            STATE["tokens"][token] = {"installation": int(installation), "expires": expires, "revoked": False}
        expires_at = datetime.fromtimestamp(expires, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self.reply(201, {"token": token, "expires_at": expires_at,
                                "permissions": {"organization_self_hosted_runners": "write", "administration": "write"},
                                "repository_selection": "all"})

    def jitconfig(self, issued, owner, scope, body):
        owning = ARGS.owners.get(owner)
        if owning is not None and owning != issued["installation"]:
            return self.error(403, "Resource not accessible by integration")
        if not isinstance(body, dict):
            return self.error(400, "Problems parsing JSON")
        name, group, labels = body.get("name"), body.get("runner_group_id"), body.get("labels")
        if not isinstance(name, str) or not name:
            return self.error(422, "Invalid request.\n\n\"name\" wasn't supplied.")
        if not isinstance(group, int):
            return self.error(422, "Invalid request.\n\n\"runner_group_id\" wasn't supplied.")
        if not isinstance(labels, list) or not (1 <= len(labels) <= 100) or not all(isinstance(l, str) and l for l in labels):
            return self.error(422, "Invalid request.\n\nFor 'properties/labels', must have 1 to 100 strings.")
        if "work_folder" in body and not isinstance(body["work_folder"], str):
            return self.error(422, "Invalid request.\n\nFor 'properties/work_folder', must be a string.")
        with LOCK:
            if (scope, name) in STATE["runners"]:
                return self.error(409, "Already exists - A runner with the name %s already exists." % name)
            runner_id = STATE["next_runner_id"]
            STATE["next_runner_id"] += 1
            STATE["runners"][(scope, name)] = runner_id
        config = {"scope": scope, "runner_id": runner_id, "name": name, "labels": labels,
                  "work_folder": body.get("work_folder", "_work")}
        encoded = base64.b64encode(json.dumps(config).encode()).decode()
        return self.reply(201, {
            "runner": {"id": runner_id, "name": name, "os": "unknown", "status": "offline", "busy": False,
                       "runner_group_id": group,
                       "labels": [{"id": i + 1, "name": l, "type": "read-only"} for i, l in enumerate(labels)]},
            "encoded_jit_config": encoded,
        })

    def fake_control(self, parts, raw):
        body = json.loads(raw) if raw else {}
        with LOCK:
            if parts == ["requests"]:
                return self.reply(200, STATE["requests"])
            if parts == ["stats"]:
                return self.reply(200, {"token_requests": STATE["token_requests"]})
            if parts == ["clock"]:
                STATE["clock"] = body.get("now")
                return self.reply(200, {"now": now()})
            if parts == ["revoke"]:
                for token in STATE["tokens"].values():
                    token["revoked"] = True
                return self.reply(200, {"revoked": len(STATE["tokens"])})
            if len(parts) == 4 and parts[0] == "jobs":
                # POST /_fake/jobs/{owner}/{repo}/{job_id} {"status": "queued" | "completed", "conclusion": ...}
                STATE["jobs"]["/".join(parts[1:4])] = {"status": body.get("status", "queued"), "conclusion": body.get("conclusion")}
                return self.reply(200, {})
            if parts == ["config"]:
                for key in ("token_ttl_seconds", "token_delay_ms"):
                    if key in body:
                        STATE[key] = body[key]
                return self.reply(200, {})
        return self.error(404, "Not Found")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--public-key", required=True)
    parser.add_argument("--owner", action="append", default=[], help="NAME=INSTALLATION_ID")
    ARGS = parser.parse_args()
    ARGS.owners = {k: int(v) for k, v in (o.split("=", 1) for o in ARGS.owner)}
    if subprocess.run(["openssl", "version"], capture_output=True).returncode != 0:
        print("MISSING openssl", flush=True)
        sys.exit(1)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("READY", server.server_address[1], flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), server.shutdown()), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
