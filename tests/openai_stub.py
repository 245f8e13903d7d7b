#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A tiny OpenAI-compatible completions server for testing examples/03_http_engine.

Stdlib only. Binds 127.0.0.1 on an ephemeral port. POST /v1/completions answers
"Echo: <prompt>", word by word when streaming (server-sent events), with usage. Prompts steer it:
  #429       -> 429 with Retry-After: 2          #503 -> 503 with Retry-After: 1
  #400       -> 400                              #slow -> streams one word every 0.25 s, 40 words
  #flaky-K   -> 503 (Retry-After: 0) the first time key K is seen, then a normal answer

  openai_stub.py --serve            serve until killed, print the port
  openai_stub.py --run BINARY       serve, run `BINARY http://127.0.0.1:PORT --selftest`
                                    (bounded to 90 s), exit with its status
"""
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_seen = set()
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def _json(self, code, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path in ("/health", "/v1/models"):
            self._json(200, {"status": "ok", "data": [{"id": "stub"}]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        try:
            req = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return self._json(400, {"error": {"message": "bad json"}})
        if self.path != "/v1/completions":
            return self._json(404, {"error": {"message": "not found"}})
        prompt = req.get("prompt", "")
        if not isinstance(prompt, str) or "model" not in req:
            return self._json(400, {"error": {"message": "prompt and model required"}})
        if prompt == "#429":
            return self._json(429, {"error": {"message": "rate limited"}}, [("Retry-After", "2")])
        if prompt == "#503":
            return self._json(503, {"error": {"message": "loading model"}},
                              [("Retry-After", "1")])
        if prompt == "#400":
            return self._json(400, {"error": {"message": "bad request"}})
        if prompt.startswith("#flaky-"):
            with _lock:
                first = prompt not in _seen
                _seen.add(prompt)
            if first:
                return self._json(503, {"error": {"message": "warming up"}},
                                  [("Retry-After", "0")])
        slow = prompt == "#slow"
        words = (["tick"] * 40) if slow else ("Echo: " + prompt).split(" ")
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(words),
                 "total_tokens": len(prompt.split()) + len(words)}
        if not req.get("stream"):
            return self._json(200, {"id": "cmpl-stub", "object": "text_completion",
                                    "model": req["model"],
                                    "choices": [{"index": 0, "text": " ".join(words),
                                                 "finish_reason": "stop"}],
                                    "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for i, w in enumerate(words):
                piece = w if i == 0 else " " + w
                ev = {"id": "cmpl-stub", "object": "text_completion", "model": req["model"],
                      "choices": [{"index": 0, "text": piece, "finish_reason": None}]}
                self.wfile.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
                self.wfile.flush()
                if slow:
                    time.sleep(0.25)
            final = {"id": "cmpl-stub", "object": "text_completion", "model": req["model"],
                     "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}
            self.wfile.write(b"data: " + json.dumps(final).encode() + b"\n\n")
            if (req.get("stream_options") or {}).get("include_usage"):
                u = {"id": "cmpl-stub", "object": "text_completion", "choices": [],
                     "usage": usage}
                self.wfile.write(b"data: " + json.dumps(u).encode() + b"\n\n")
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client canceled: expected in the deadline and cancel scenarios


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    if len(sys.argv) >= 3 and sys.argv[1] == "--run":
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            rc = subprocess.run([sys.argv[2], "http://127.0.0.1:%d" % port, "--selftest"],
                                timeout=90).returncode
        except subprocess.TimeoutExpired:
            print("selftest timed out", file=sys.stderr)
            rc = 1
        srv.shutdown()
        sys.exit(rc)
    print(port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
