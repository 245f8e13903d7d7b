#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Start the OpenAI-compatible test servers on free loopback ports, run a command, stop them.

  http_servers.py [--mock-llm] [--stub] [--timeout S] -- COMMAND [ARGS...]

--mock-llm  the third-party npm server @dwmkerr/mock-llm (tests/node/node_modules, installed by
            `make deps`) with tests/mock_llm_rules.yaml; its base URL goes into
            SWARM_MOCK_LLM_URL. Exits 77 (skip) when node or the package is absent.
--stub      the project's own stub, tests/openai_stub.py, for what mock-llm cannot produce
            (Retry-After headers, errors and truncation after streamed output, the legacy API
            streamed); its base URL goes into SWARM_STUB_URL.

The servers are always stopped (terminate, then kill), whatever the command does; the command
is bounded by --timeout (default 120 s). Exits with the command's status.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK_LLM_MAIN = os.path.join(HERE, "node", "node_modules", "@dwmkerr", "mock-llm", "dist",
                             "main.js")
RULES = os.path.join(HERE, "mock_llm_rules.yaml")
SKIP = 77


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, seconds=20.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def mock_llm_available():
    return shutil.which("node") is not None and os.path.isfile(MOCK_LLM_MAIN)


def start_mock_llm(workdir):
    """Returns (process, base_url) or (None, None) if it did not come up."""
    for _ in range(3):  # a port taken between free_port() and listen(): try another
        port = free_port()
        env = dict(os.environ, HOST="127.0.0.1", PORT=str(port))
        log = open(os.path.join(workdir, "mock-llm.log"), "ab")
        proc = subprocess.Popen(["node", MOCK_LLM_MAIN, "--config", RULES], cwd=workdir, env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        base = "http://127.0.0.1:%d" % port
        if wait_ready(base + "/health", proc):
            return proc, base
        stop(proc)
    return None, None


def start_stub():
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "openai_stub.py"), "--serve"],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    if not line.isdigit():
        stop(proc)
        return None, None
    base = "http://127.0.0.1:%s" % line
    if not wait_ready(base + "/health", proc):
        stop(proc)
        return None, None
    return proc, base


def main(argv):
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    opts, cmd = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    timeout = 120.0
    if "--timeout" in opts:
        timeout = float(opts[opts.index("--timeout") + 1])
    if "--mock-llm" in opts and not mock_llm_available():
        print("skip: node or tests/node/node_modules/@dwmkerr/mock-llm is absent "
              "(run `make deps` or `npm install --prefix tests/node`)")
        return SKIP
    procs = []
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="swarm-http-") as workdir:
        try:
            if "--mock-llm" in opts:
                p, base = start_mock_llm(workdir)
                if p is None:
                    log = os.path.join(workdir, "mock-llm.log")
                    print("mock-llm did not start:\n" + open(log, errors="replace").read(),
                          file=sys.stderr)
                    return 1
                procs.append(p)
                env["SWARM_MOCK_LLM_URL"] = base
            if "--stub" in opts:
                p, base = start_stub()
                if p is None:
                    print("openai_stub.py did not start", file=sys.stderr)
                    return 1
                procs.append(p)
                env["SWARM_STUB_URL"] = base
            try:
                return subprocess.run(cmd, env=env, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                print("command timed out after %.0f s" % timeout, file=sys.stderr)
                return 1
        finally:
            for p in procs:
                stop(p)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
