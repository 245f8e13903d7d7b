#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A tiny OpenAI-compatible server for the cases the third-party mock-llm cannot produce.

Stdlib only. Binds 127.0.0.1 on an ephemeral port. POST /v1/chat/completions (last message's
content) and POST /v1/completions (prompt) answer "Echo: <text>", word by word when streaming
(server-sent events), with usage. GET /health and /v1/models answer 200. The text steers it:
  #429        -> 429 with Retry-After: 2             #503      -> 503 with Retry-After: 1
  #429-ms     -> 429 with retry-after-ms: 1500       #503-date -> 503, Retry-After as HTTP-date
  #400        -> 400                                 #slow     -> one word every 0.25 s, 40 words
  #flaky-K    -> 503 (Retry-After: 0) the first time key K is seen, then a normal answer
  #truncated  -> streams 3 words, then closes without a finish reason or [DONE]
  #midstream-error -> streams 3 words, then an error event {"error": {...}}, then closes
mock-llm (tests/mock_llm_rules.yaml) cannot: set response headers (Retry-After), fail or cut a
stream after output was sent, or stream the legacy completions API.

  openai_stub.py --serve            serve until killed, print the port
"""
import json
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_seen = set()
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle on, the body waits for the client's
    # delayed ACK of the headers (~40 ms per request on a kept-alive connection).
    disable_nagle_algorithm = True

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
        chat = self.path == "/v1/chat/completions"
        if not chat and self.path != "/v1/completions":
            return self._json(404, {"error": {"message": "not found"}})
        if chat:
            msgs = req.get("messages")
            ok = isinstance(msgs, list) and msgs and isinstance(msgs[-1], dict)
            prompt = msgs[-1].get("content", "") if ok else None
        else:
            prompt = req.get("prompt", "")
        if not isinstance(prompt, str) or "model" not in req:
            return self._json(400, {"error": {"message": "prompt/messages and model required"}})
        if prompt == "#429":
            return self._json(429, {"error": {"message": "rate limited"}}, [("Retry-After", "2")])
        if prompt == "#429-ms":
            return self._json(429, {"error": {"message": "rate limited"}},
                              [("retry-after-ms", "1500"), ("Retry-After", "9")])
        if prompt == "#503":
            return self._json(503, {"error": {"message": "loading model"}},
                              [("Retry-After", "1")])
        if prompt == "#503-date":
            when = formatdate(time.time() + 3, usegmt=True)
            return self._json(503, {"error": {"message": "maintenance"}}, [("Retry-After", when)])
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
        obj = "chat.completion" if chat else "text_completion"

        def choice(text, finish, delta):
            if not chat:
                return {"index": 0, "text": text, "finish_reason": finish}
            key = "delta" if delta else "message"
            body = {"content": text} if delta else {"role": "assistant", "content": text}
            return {"index": 0, key: body, "finish_reason": finish}

        if not req.get("stream"):
            return self._json(200, {"id": "cmpl-stub", "object": obj, "model": req["model"],
                                    "choices": [choice(" ".join(words), "stop", False)],
                                    "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunk_obj = obj + (".chunk" if chat else "")

        def send(ev):
            self.wfile.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
            self.wfile.flush()

        try:
            cut = prompt in ("#truncated", "#midstream-error")
            for i, w in enumerate(words[:3] if cut else words):
                piece = w if i == 0 else " " + w
                send({"id": "cmpl-stub", "object": chunk_obj, "model": req["model"],
                      "choices": [choice(piece, None, True)]})
                if slow:
                    time.sleep(0.25)
            if prompt == "#truncated":
                return
            if prompt == "#midstream-error":
                send({"error": {"message": "backend crashed", "type": "server_error"}})
                return
            send({"id": "cmpl-stub", "object": chunk_obj, "model": req["model"],
                  "choices": [choice("", "stop", True)]})
            if (req.get("stream_options") or {}).get("include_usage"):
                send({"id": "cmpl-stub", "object": chunk_obj, "choices": [], "usage": usage})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client canceled: expected in the deadline and cancel scenarios


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
