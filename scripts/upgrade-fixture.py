#!/usr/bin/env python3
"""Makes the upgrade fixture of one keymeter release: a database that release
made and used, on SQLite (a file) and PostgreSQL (a plain SQL dump), and a
manifest of what its API answered, which tests/api/upgrade.rs checks the
current release still answers after migrating that database.

    scripts/upgrade-fixture.sh a2023be     # builds that revision, then runs this

    scripts/upgrade-fixture.py BINARY OUT_DIR POSTGRES_ADMIN_URL

Standard library only. The walkthrough touches every table the release had:
users, sessions, billing accounts, keys (created, expiring, revoked, rotated
with a grace), charges with and without requestIds, a refused charge, a
failed login, the counters and every rollup.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from datetime import datetime, timedelta, timezone

PASSWORDS = {"alice@example.com": "alice password 1", "bob@example.com": "bob password 22"}

KEY_FIELDS = "id name keyType prefix createdAt lastUsedAt revokedAt expiresAt status rotatedFromId"
USAGE = ("{ keysUsage { cycleStart cycleEnd totalCredits remainingCredits "
         "keys { credits requests apiKey { id } } } }")
SERIES = "{ usageSeries { from to total { start credits requests } } }"
HOURS = ("query($from: DateTime!) { usageSeries(from: $from, interval: HOUR) "
         "{ total { start credits requests } } }")
VERIFY = ("mutation($i: VerifyKeyInput!) { verifyKey(input: $i) "
          "{ valid code keyId remainingCredits cycleEnd } }")


class Server:
    def __init__(self, binary, database_url):
        env = dict(os.environ, DATABASE_URL=database_url, KEYMETER_BIND="127.0.0.1:0",
                   KEYMETER_LOG="info", KEYMETER_DB_MIN_CONNECTIONS="1")
        self.process = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        for line in self.process.stdout:
            if "keymeter listening addr=" in line:
                self.addr = line.split("keymeter listening addr=")[1].strip()
                break
        else:
            raise SystemExit("the server did not start")
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()

    def graphql(self, query, variables=None, token=None):
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"http://{self.addr}/graphql", data=body,
                                         headers={"content-type": "application/json"})
        if token:
            request.add_header("authorization", f"Bearer {token}")
        with urllib.request.urlopen(request) as response:
            answer = json.load(response)
        return answer

    def ok(self, query, variables=None, token=None):
        answer = self.graphql(query, variables, token)
        if "errors" in answer:
            raise SystemExit(f"{query}: {answer}")
        return answer["data"]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def walkthrough(server):
    """Uses the release as a customer would; returns what it answered."""
    users = {}
    for email, password in PASSWORDS.items():
        signup = server.ok(
            "mutation($e: String!, $p: String!) { signup(input: { email: $e, password: $p }) "
            "{ token user { id } defaultKey { secret apiKey { id } } } }",
            {"e": email, "p": password})["signup"]
        users[email] = {"token": signup["token"], "id": signup["user"]["id"], "keys": {
            "default": {"secret": signup["defaultKey"]["secret"], "id": signup["defaultKey"]["apiKey"]["id"]}}}
    alice = users["alice@example.com"]
    expires = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0)
    for name, extra in [("production", {"keyType": "PROD"}), ("expiring", {"expiresAt": expires.isoformat()}),
                        ("revoked", {})]:
        made = server.ok("mutation($i: CreateKeyInput!) { createKey(input: $i) { secret apiKey { id } } }",
                         {"i": {"name": name, **extra}}, alice["token"])["createKey"]
        alice["keys"][name] = {"secret": made["secret"], "id": made["apiKey"]["id"]}
    server.ok("mutation($id: UUID!) { revokeKey(id: $id) { id } }", {"id": alice["keys"]["revoked"]["id"]},
              alice["token"])
    rotated = server.ok("mutation($i: RotateKeyInput!) { rotateKey(input: $i) { secret apiKey { id } } }",
                        {"i": {"id": alice["keys"]["default"]["id"], "gracePeriodSeconds": 3600}},
                        alice["token"])["rotateKey"]
    alice["keys"]["rotated"] = {"secret": rotated["secret"], "id": rotated["apiKey"]["id"]}

    answers = {}
    calls = [("alice", "production", 5, "r-1"), ("alice", "production", 3, "r-2"), ("alice", "default", 2, "r-3"),
             ("alice", "rotated", 1, None), ("alice", "rotated", 1, None), ("alice", "expiring", 0, None),
             ("alice", "production", 5000, "too-much"), ("bob", "default", 7, "b-1")]
    for owner, key, credits, request_id in calls:
        secret = users[f"{owner}@example.com"]["keys"][key]["secret"]
        verify = {"key": secret, "credits": credits, "endpoint": f"/v1/{key}"}
        if request_id:
            verify["requestId"] = request_id
        answer = server.ok(VERIFY, {"i": verify})["verifyKey"]
        if request_id:
            answers[f"{owner}/{key}/{request_id}"] = {"input": verify, "answer": answer}
    server.graphql("mutation { login(input: { email: \"alice@example.com\", password: \"wrong password\" }) "
                   "{ token } }")
    return users, answers


def observe(server, users):
    """What each user's dashboard shows, read through the API."""
    seen = {}
    hour_ago = (datetime.now(timezone.utc) - timedelta(hours=3)).isoformat()
    for email, user in users.items():
        token = user["token"]
        seen[email] = {
            "keys": server.ok(f"{{ keys(includeRevoked: true) {{ {KEY_FIELDS} }} }}", None, token)["keys"],
            "keysUsage": server.ok(USAGE, None, token)["keysUsage"],
            "series": server.ok(SERIES, None, token)["usageSeries"],
            "hours": server.ok(HOURS, {"from": hour_ago}, token)["usageSeries"],
            "me": server.ok("{ me { id email billingAccount { id plan monthlyCredits billingCycleStart } } }",
                            None, token)["me"],
        }
    return seen, hour_ago


def run(binary, database_url):
    server = Server(binary, database_url)
    try:
        users, answers = walkthrough(server)
        seen, hour_ago = observe(server, users)
    finally:
        server.stop()
    return {"users": users, "passwords": PASSWORDS, "answers": answers, "seen": seen, "hours_from": hour_ago,
            "made_at": datetime.now(timezone.utc).isoformat()}


def sqlite_fixture(binary, out):
    path = os.path.join(out, "keymeter.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    manifest = run(binary, f"sqlite://{path}?mode=rwc")
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("PRAGMA journal_mode=DELETE")
    manifest["rows"] = row_counts(lambda sql: db.execute(sql).fetchone()[0],
                                  [r[0] for r in db.execute(
                                      "SELECT name FROM sqlite_master WHERE type='table' "
                                      "AND name NOT LIKE 'sqlite_%'")])
    db.execute("VACUUM")
    db.close()
    return manifest


def postgres_fixture(binary, out, admin_url):
    name = f"keymeter_fixture_{os.getpid()}"
    psql = lambda url, sql: subprocess.run(["psql", url, "-qAtXc", sql], check=True, capture_output=True,
                                           text=True).stdout.strip()
    psql(admin_url, f"CREATE DATABASE {name}")
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        manifest = run(binary, url)
        tables = psql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").split()
        manifest["rows"] = row_counts(lambda sql: int(psql(url, sql)), tables)
        dump = subprocess.run(["pg_dump", "--inserts", "--no-owner", "--no-privileges", "--no-comments", url],
                              check=True, capture_output=True, text=True).stdout
        # Plain SQL only: psql's meta-commands (\restrict) mean nothing to a driver.
        dump = "".join(line for line in dump.splitlines(keepends=True) if not line.startswith("\\"))
        with open(os.path.join(out, "postgres.sql"), "w") as f:
            f.write(dump)
    finally:
        psql(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return manifest


def row_counts(count, tables):
    return {table: count(f"SELECT COUNT(*) FROM {table}") for table in sorted(tables)}


def main():
    binary, out, admin_url = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    manifest = {"sqlite": sqlite_fixture(binary, out), "postgres": postgres_fixture(binary, out, admin_url)}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
