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
  GET  /repos/{owner}/{repo}/actions/runners?name=N  (and /orgs/{org}/...)   {total_count, runners}
  DELETE /repos/{owner}/{repo}/actions/runners/{id}  (and /orgs/{org}/...)   204; 404 unknown
  GET  /app/hook/deliveries?per_page=&cursor=            the App's deliveries, newest first, `Link: <...>; rel="next"` (JWT)
  POST /app/hook/deliveries/{id}/attempts                202; records a new attempt of the same guid, redelivery true (JWT)
  GET  /repos/{owner}/{repo}/actions/jobs/{id}          the job as seeded by POST /_fake/jobs/{owner}/{repo}/{id}
  GET  /repos/{owner}/{repo}/actions/runs?status=        {total_count, workflow_runs}: the runs of the seeded jobs
  GET  /repos/{owner}/{repo}/actions/runs/{id}/jobs      {total_count, jobs}
  POST /repos/{owner}/{repo}/check-runs                  201 {id, name, head_sha, status, conclusion}
  GET  /_fake/requests       every request seen: method, path, headers (lower-case), json body, jwt claims
  GET  /_fake/stats          {"token_requests": {installation id: count}}
  POST /_fake/clock          {"now": unix seconds} sets the fake's clock (default: real time)
  POST /_fake/revoke         revokes every issued token (the next installation call gets 401)
  POST /_fake/config         {"token_ttl_seconds": N, "token_delay_ms": N, "deliveries_page_max": N,
                              "redelivery_status_code": N (what a redelivery attempt records; default 202)}
  POST /_fake/jobs/{owner}/{repo}/{id}   a job: status, conclusion, run_id, run_attempt, name, labels,
                              started_at, completed_at, runner_name, head_sha (missing fields keep defaults)
  POST /_fake/deliveries     {"deliveries": [{guid, status_code, event, action, installation_id, ...}]} adds attempts

A run's status comes from its jobs: completed when all are, queued when all are queued, else in_progress.

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
    "jobs": {},  # "owner/repo/job_id" -> the job as the REST API returns it; unknown jobs are 404
    "deliveries": [],  # attempts, as GET /app/hook/deliveries lists them
    "next_delivery_id": 9000,
    "deliveries_page_max": 100,
    "redelivery_status_code": 202,
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

    def reply(self, status, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
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
            if parts == ["app", "hook", "deliveries"] and self.command == "GET":
                return self.list_deliveries()
            if len(parts) == 5 and parts[1:3] == ["hook", "deliveries"] and parts[4] == "attempts" and self.command == "POST":
                return self.redeliver(parts[3])
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
        if len(parts) in (4, 5, 6) and parts[-1] != "generate-jitconfig" and "runners" in parts:
            scope_parts = parts[:parts.index("runners")]
            if scope_parts[-1:] == ["actions"] and ((scope_parts[0] == "orgs" and len(scope_parts) == 3) or
                                                   (scope_parts[0] == "repos" and len(scope_parts) == 4)):
                scope = ("org:" + scope_parts[1]) if scope_parts[0] == "orgs" else ("repo:" + scope_parts[1] + "/" + scope_parts[2])
                rest = parts[parts.index("runners") + 1:]
                if self.command == "GET" and not rest:
                    wanted = self.query().get("name")
                    with LOCK:
                        found = [{"id": i, "name": n, "os": "linux", "status": "offline", "busy": False, "labels": []}
                                 for (s, n), i in STATE["runners"].items() if s == scope and (wanted is None or n == wanted)]
                    return self.reply(200, {"total_count": len(found), "runners": found})
                if self.command == "DELETE" and len(rest) == 1 and rest[0].isdigit():
                    with LOCK:
                        key = next((k for k, i in STATE["runners"].items() if k[0] == scope and i == int(rest[0])), None)
                        if key is not None:
                            del STATE["runners"][key]
                    if key is None:
                        return self.error(404, "Not Found")
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
        if self.command == "GET" and len(parts) == 6 and parts[0] == "repos" and parts[3:5] == ["actions", "jobs"]:
            with LOCK:
                job = STATE["jobs"].get("/".join([parts[1], parts[2], parts[5]]))
            if job is None:
                return self.error(404, "Not Found")
            return self.reply(200, job)
        if self.command == "GET" and len(parts) == 5 and parts[0] == "repos" and parts[3:5] == ["actions", "runs"]:
            wanted = self.query().get("status")
            runs = [{k: v for k, v in r.items() if k != "_jobs"} for r in self.runs(parts[1], parts[2]).values()
                    if wanted is None or r["status"] == wanted]
            return self.reply(200, {"total_count": len(runs), "workflow_runs": runs})
        if self.command == "GET" and len(parts) == 7 and parts[0] == "repos" and parts[3:5] == ["actions", "runs"] and parts[6] == "jobs":
            run = self.runs(parts[1], parts[2]).get(int(parts[5])) if parts[5].isdigit() else None
            if run is None:
                return self.error(404, "Not Found")
            return self.reply(200, {"total_count": len(run["_jobs"]), "jobs": run["_jobs"]})
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

    def query(self):
        _, _, text = self.path.partition("?")
        return dict(p.partition("=")[::2] for p in text.split("&") if p)

    def runs(self, owner, repo):
        """The runs of a repository's seeded jobs, by id, each with its status and jobs."""
        prefix = owner + "/" + repo + "/"
        with LOCK:
            jobs = [dict(j) for k, j in sorted(STATE["jobs"].items()) if k.startswith(prefix)]
        runs = {}
        for job in jobs:
            runs.setdefault(job["run_id"], []).append(job)
        answer = {}
        for run_id, members in runs.items():
            statuses = {j["status"] for j in members}
            status = "completed" if statuses == {"completed"} else "queued" if statuses <= {"queued", "waiting", "pending", "requested"} else "in_progress"
            answer[run_id] = {"id": run_id, "run_attempt": members[0]["run_attempt"], "status": status, "name": "CI",
                              "_jobs": members}
        return answer

    def list_deliveries(self):
        query = self.query()
        try:
            per_page = min(int(query.get("per_page", "30")), 100, STATE["deliveries_page_max"])
        except ValueError:
            return self.error(400, "per_page must be an integer")
        cursor = query.get("cursor")
        with LOCK:
            ordered = sorted(STATE["deliveries"], key=lambda d: -d["id"])
        if cursor:
            if not cursor.startswith("v1_") or not cursor[3:].isdigit():
                return self.error(400, "Invalid cursor")
            ordered = [d for d in ordered if d["id"] < int(cursor[3:])]
        page = ordered[:per_page]
        headers = {}
        if len(ordered) > per_page:
            host = "http://%s:%d" % self.server.server_address[:2]
            headers["Link"] = '<%s/app/hook/deliveries?per_page=%d&cursor=v1_%d>; rel="next"' % (host, per_page, page[-1]["id"])
        return self.reply(200, page, headers)

    def redeliver(self, delivery_id):
        with LOCK:
            original = next((d for d in STATE["deliveries"] if str(d["id"]) == delivery_id), None)
            if original is None:
                return self.error(404, "Not Found")
            code = STATE["redelivery_status_code"]
            self.add_delivery(dict(original, id=None, redelivery=True, status_code=code,
                                   status="OK" if 200 <= code < 300 else "Invalid HTTP Response: %d" % code))
        return self.reply(202, {})

    def add_delivery(self, fields):
        """Called with LOCK held."""
        delivery = {"id": None, "guid": None, "delivered_at": datetime.fromtimestamp(now(), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "redelivery": False, "duration": 0.1, "status": "OK", "status_code": 200, "event": "workflow_job",
                    "action": None, "installation_id": None, "repository_id": None, "throttled_at": None}
        delivery.update(fields)
        if delivery["id"] is None:
            STATE["next_delivery_id"] += 1
            delivery["id"] = STATE["next_delivery_id"]
        if delivery["guid"] is None:
            delivery["guid"] = "guid-%d" % delivery["id"]
        STATE["deliveries"].append(delivery)
        return delivery

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
                # POST /_fake/jobs/{owner}/{repo}/{job_id}: the job's fields, merged over what was set before
                key, job_id = "/".join(parts[1:4]), int(parts[3])
                job = STATE["jobs"].get(key) or {
                    "id": job_id, "run_id": 1000 + job_id, "run_attempt": 1, "name": "build %d" % job_id, "workflow_name": "CI",
                    "head_branch": "main", "head_sha": "abc123", "status": "queued", "conclusion": None, "labels": [],
                    "created_at": "2026-01-05T09:59:00Z", "started_at": "2026-01-05T09:59:00Z", "completed_at": None,
                    "runner_id": None, "runner_name": None, "runner_group_id": None, "runner_group_name": None, "steps": []}
                job.update(body)
                if job["status"] != "completed":
                    job["conclusion"] = body.get("conclusion")
                STATE["jobs"][key] = job
                return self.reply(200, {})
            if parts == ["deliveries"]:
                added = [self.add_delivery(d) for d in body.get("deliveries", [])]
                return self.reply(200, {"ids": [d["id"] for d in added]})
            if parts == ["config"]:
                for key in ("token_ttl_seconds", "token_delay_ms", "deliveries_page_max", "redelivery_status_code"):
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
