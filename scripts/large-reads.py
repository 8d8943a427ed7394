#!/usr/bin/env python3
# RSS of a `metacenter dev` node while N clients stall on GET /meta/big (a 3.75 MiB
# object): what `limits.max_large_reads` bounds (docs/operations.md, Security).
#   scripts/large-reads.py target/release/metacenter N
# Uses 127.0.0.1:18180 (API) and :18190 (peer), data in /tmp/large-reads.
import json, os, socket, subprocess, sys, time, urllib.request
BIN, N = sys.argv[1], int(sys.argv[2])
api, peer, data = "127.0.0.1:18180", "127.0.0.1:18190", "/tmp/large-reads"
subprocess.run(["rm", "-rf", data])
p = subprocess.Popen([BIN, "dev", "--listen", api, "--peer-listen", peer, "--data-dir", data],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def rss():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1]) // 1024
def req(method, path, body=None):
    r = urllib.request.Request(f"http://{api}{path}", method=method,
                               data=None if body is None else json.dumps(body).encode())
    return urllib.request.urlopen(r, timeout=30).read()
for _ in range(200):
    try: req("GET", "/ready"); break
    except Exception: time.sleep(0.1)
v = "v" * (64 << 10)
for part in range(4):
    req("PATCH", "/meta/big", {f"p{part}-{i}": v for i in range(15)})
time.sleep(1)
base = rss()
socks = []
for _ in range(N):
    s = socket.create_connection(("127.0.0.1", 18180))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET /meta/big HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
peak = base
t0 = time.time()
while time.time() - t0 < 8:
    peak = max(peak, rss()); time.sleep(0.2)
health = time.time(); req("GET", "/health"); health = time.time() - health
print(f"{N} stalled readers of a {4*15*64/1024:.2f} MiB object: RSS {base} MiB before, peak {peak} MiB (+{peak-base} MiB); /health answered in {health*1000:.0f} ms")
for s in socks: s.close()
p.terminate(); p.wait()
