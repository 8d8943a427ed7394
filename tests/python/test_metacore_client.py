#!/usr/bin/env python3
"""A meta-core client, written the way meta-core's README shows its HTTP API being used
from Python with `requests`, run against a metacenter node to show that such clients
work unchanged.

Usage: python3 test_metacore_client.py http://HOST:PORT

It registers a service, heartbeats it, lists services, writes metadata for a hash,
reads it back whole and one property at a time, adds members to a `|`-delimited set,
and reads /health and /leader. Exit status 0 means every step answered as meta-core
documents; any other status names the step that did not.

This file is a script, not a pytest module: it has no test functions.
"""

import sys
import uuid

import requests

TIMEOUT = 30


class Failure(Exception):
    """A step did not answer as documented."""


def check(condition, what):
    if not condition:
        raise Failure(what)


def expect_json(resp, what, status=200):
    check(
        resp.status_code == status,
        f"{what}: HTTP {resp.status_code}, expected {status}: {resp.text!r}",
    )
    try:
        return resp.json()
    except ValueError as e:
        raise Failure(f"{what}: body is not JSON ({e}): {resp.text!r}") from e


def run(base):
    s = requests.Session()
    suffix = uuid.uuid4().hex[:8]
    name = f"py-worker-{suffix}"
    hash_id = f"QmPyClient{suffix}"

    # Register a service with its ServiceInfo.
    info = {
        "name": name,
        "version": "1.0.0",
        "api": "http://127.0.0.1:9999",
        "status": "healthy",
        "pid": 12345,
        "hostname": "py-host",
        "startedAt": "2024-01-01T00:00:00Z",
        "capabilities": ["transcode"],
        "endpoints": {"health": "/health"},
    }
    reg = expect_json(s.put(f"{base}/services/{name}", json=info, timeout=TIMEOUT), "register")
    check(reg.get("name") == name, f"register: name {reg.get('name')!r}")
    check(isinstance(reg.get("lastHeartbeat"), str), "register: lastHeartbeat stamped")
    check(reg.get("capabilities") == ["transcode"], "register: capabilities kept")

    # Heartbeat.
    hb = expect_json(s.post(f"{base}/services/{name}/heartbeat", timeout=TIMEOUT), "heartbeat")
    check(hb.get("success") is True, f"heartbeat: {hb}")

    # List services and find ours.
    listing = expect_json(s.get(f"{base}/services", timeout=TIMEOUT), "list services")
    services = listing.get("services")
    check(isinstance(services, list), f"list services: {listing}")
    check(listing.get("count") == len(services), "list services: count matches")
    mine = [x for x in services if x.get("name") == name]
    check(len(mine) == 1, f"list services: {name} listed once")
    check(mine[0].get("status") == "healthy", f"list services: status {mine[0].get('status')!r}")
    one = expect_json(s.get(f"{base}/services/{name}", timeout=TIMEOUT), "get service")
    check(one.get("version") == "1.0.0", "get service: version")

    # Metadata for a hash: put, get whole, get one property.
    meta = {"title": "Big Buck Bunny", "year": "2008", "genre": "animation"}
    put = expect_json(s.put(f"{base}/meta/{hash_id}", json=meta, timeout=TIMEOUT), "put metadata")
    check(put.get("success") is True and put.get("hashId") == hash_id, f"put metadata: {put}")
    got = expect_json(s.get(f"{base}/meta/{hash_id}", timeout=TIMEOUT), "get metadata")
    check(got.get("hashId") == hash_id, f"get metadata: hashId {got.get('hashId')!r}")
    check(got.get("metadata") == meta, f"get metadata: {got.get('metadata')!r}")

    r = s.get(f"{base}/meta/{hash_id}/title", timeout=TIMEOUT)
    check(r.status_code == 200, f"get property: HTTP {r.status_code}")
    check(r.text == "Big Buck Bunny", f"get property: {r.text!r}")
    check(r.headers.get("Content-Type", "").startswith("text/plain"), "get property: text/plain")

    missing = expect_json(s.get(f"{base}/meta/{hash_id}/nope", timeout=TIMEOUT), "missing property", 404)
    check(missing.get("error") == "Not Found", f"missing property: {missing}")
    check(missing.get("message") == "property not found", f"missing property: {missing}")

    # Add to a set field.
    for member, new in (("action", True), ("comedy", True), ("action", False)):
        add = expect_json(
            s.post(f"{base}/meta/{hash_id}/_add/tags", data=member, timeout=TIMEOUT),
            f"add {member}",
        )
        check(add.get("success") is True, f"add {member}: {add}")
        check(add.get("added") is new, f"add {member}: added should be {new}: {add}")
    tags = s.get(f"{base}/meta/{hash_id}/tags", timeout=TIMEOUT)
    check(tags.status_code == 200, f"get tags: HTTP {tags.status_code}")
    check(tags.text.split("|") == ["action", "comedy"], f"get tags: {tags.text!r}")

    # Cluster: health and leader.
    health = expect_json(s.get(f"{base}/health", timeout=TIMEOUT), "health")
    check(health.get("status") == "ok", f"health: {health}")
    check(health.get("role") == "leader", f"health: role {health.get('role')!r}")
    leader = expect_json(s.get(f"{base}/leader", timeout=TIMEOUT), "leader")
    for key in ("id", "host", "api", "http", "timestamp"):
        check(key in leader, f"leader: no {key!r} in {leader}")
    check(base.endswith(leader["api"]), f"leader: api {leader['api']!r} is this node ({base})")

    # Clean up what this client created.
    expect_json(s.delete(f"{base}/services/{name}", timeout=TIMEOUT), "deregister")
    gone = expect_json(s.get(f"{base}/services/{name}", timeout=TIMEOUT), "deregistered", 404)
    check(gone.get("message") == "service not found", f"deregistered: {gone}")
    expect_json(s.delete(f"{base}/meta/{hash_id}", timeout=TIMEOUT), "delete metadata")


def main(argv):
    if len(argv) != 2 or not argv[1].startswith("http"):
        print(f"usage: {argv[0]} http://HOST:PORT", file=sys.stderr)
        return 2
    try:
        run(argv[1].rstrip("/"))
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    except requests.RequestException as e:
        print(f"FAIL: request error: {e}", file=sys.stderr)
        return 1
    print("OK: meta-core client example passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
