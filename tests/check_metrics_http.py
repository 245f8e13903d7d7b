#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Outside checks of examples/05_metrics_http (meson test '05_metrics_http client').

usage: check_metrics_http.py PATH_TO_05_metrics_http

Starts the example on a free 127.0.0.1 port (no in-process load), then checks, as Prometheus,
KEDA and a kubelet would see it:
  - /metrics parses as text exposition 0.0.4 (every sample belongs to a TYPE'd family, counters
    end in _total, histograms have _bucket/_sum/_count; `promtool check metrics` is clean when
    promtool is installed), /keda is the JSON KEDA reads;
  - three idle connections (two silent, one with half a request) do not delay GET /keda: the
    answer arrives while all three are still open (the server has not had to give up on them
    first, as a one-connection-at-a-time server must). Bounded by a generous 10 s client
    timeout; no timing is asserted;
  - HEAD answers the Content-Length of the GET and no body; /healthz answers "ok";
  - POST /work beyond the channel's capacity is refused with 503 and every refused task shows up
    in swarm_channel_rejected_total;
  - after SIGTERM, while the pool drains, /healthz answers 503 and POST /work is refused; then
    it exits cleanly with a summary line.
The process is always killed at the end, whatever happens.
"""
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def get(url, method="GET", timeout=10):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def check_exposition(text):
    families = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            families[name] = kind
            continue
        if line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-z_][a-z0-9_]*)(\{[a-z]+="[A-Za-z0-9_.+-]+"(,[a-z]+="[A-Za-z0-9_.+-]+")*\})?'
                         r' (-?[0-9]+(\.[0-9]+)?)', line)
        assert m, "bad sample line: " + line
        fam = m.group(1)
        hist = re.sub(r"_(bucket|sum|count)$", "", fam)
        assert fam in families or families.get(hist) == "histogram", line
    for name, kind in families.items():
        assert (kind == "counter") == name.endswith("_total"), name
    return families


def main():
    exe = sys.argv[1]
    p = subprocess.Popen([exe, "--port", "0", "--seconds", "0", "--rate", "0",
                          "--service-ms", "20", "--max-workers", "2"],
                         stdout=subprocess.PIPE, text=True)
    idle = []
    try:
        line = p.stdout.readline()
        base = re.search(r"(http://[0-9.]+:[0-9]+/)", line).group(1)
        host, port = re.search(r"http://([0-9.]+):([0-9]+)/", base).groups()

        st, h, body = get(base + "metrics")
        assert st == 200 and h["Content-Type"].startswith("text/plain; version=0.0.4"), (st, h)
        families = check_exposition(body.decode())
        if shutil.which("promtool"):  # the live endpoint, not only the unit test's render
            r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                               timeout=60)
            assert r.returncode == 0 and not r.stdout.strip(), (r.stdout, r.stderr)
        for fam, kind in (("swarm_pool_queue_wait_seconds", "histogram"),
                          ("swarm_channel_rejected_total", "counter"),
                          ("swarm_reconcile_decisions_total", "counter"),
                          ("swarm_reconcile_max_replicas", "gauge"),
                          ("swarm_engine_breaker_state", "gauge"),
                          ("swarm_build_info", "gauge")):
            assert families.get(fam) == kind, (fam, families.get(fam))
        st, _, body = get(base + "keda")
        d = json.loads(body)
        assert isinstance(d["pools"]["agents"]["backlog"], int)
        assert isinstance(d["loops"]["scaler"]["desired_replicas"], int)

        # Three idle connections, then a scrape.
        for i in range(3):
            s = socket.create_connection((host, int(port)), timeout=5)
            if i == 2:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
            idle.append(s)
        time.sleep(0.2)  # let the server accept them before the scrape
        t0 = time.monotonic()
        st, _, body = get(base + "keda", timeout=10)
        waited = time.monotonic() - t0
        assert st == 200 and json.loads(body)["pools"]["agents"], st
        for s in idle:  # still open: neither answered nor closed by the server
            s.setblocking(False)
            try:
                data = s.recv(1)
                raise AssertionError("idle connection was answered or closed first: %r" % data)
            except BlockingIOError:
                pass

        # HEAD: the GET's Content-Length, no body.
        st, h, body = get(base + "keda", method="HEAD")
        assert st == 200 and body == b"" and int(h["Content-Length"]) > 100, (st, h, body)
        st, h, body = get(base + "healthz", method="HEAD")
        assert st == 200 and body == b"" and h["Content-Length"] == "3", (st, dict(h))
        st, _, body = get(base + "healthz")
        assert (st, body) == (200, b"ok\n"), (st, body)

        # Rejections are counted.
        st, _, body = get(base + "work?n=5000", method="POST")
        r = json.loads(body)
        refused = r["requested"] - r["accepted"]
        assert st == 503 and refused > 0, (st, r)
        _, _, text = get(base + "metrics")
        m = re.search(r'\nswarm_channel_rejected_total\{channel="requests"\} ([0-9]+)\n',
                      text.decode())
        assert m and int(m.group(1)) == refused, (m and m.group(1), refused)

        # SIGTERM with tasks still queued: while the pool drains (up to 2 s) HTTP stays up,
        # /healthz answers 503 (a kubelet takes the pod out of the Service) and new work is
        # refused. Poll until the process has seen the signal.
        p.send_signal(signal.SIGTERM)
        seen = None
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                st, _, _ = get(base + "healthz", timeout=5)
            except (urllib.error.URLError, ConnectionError) as e:
                raise AssertionError("HTTP went away before /healthz said 503: %s" % e)
            if st == 503:
                seen = st
                break
            time.sleep(0.02)
        assert seen == 503, "no 503 from /healthz after SIGTERM"
        st, _, body = get(base + "work?n=1", method="POST")
        assert st == 503, (st, body)
        out, _ = p.communicate(timeout=30)
        assert p.returncode == 0, p.returncode
        assert "summary: " in out, out
        print("ok: %d families; GET /keda with 3 idle connections open: %.3f s; %d refused"
              % (len(families), waited, refused))
    finally:
        for s in idle:
            s.close()
        if p.poll() is None:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
