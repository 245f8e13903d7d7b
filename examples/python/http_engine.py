#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""An OpenAI-compatible HTTP engine in pure Python (standard library only), served by the pool.

The Python twin of examples/http_engine.c: POST {base}/v1/chat/completions (or the legacy
/v1/completions), server-sent events parsed by hand and written to the response as they arrive,
usage and finish reason kept, HTTP errors raised as the swarm exceptions the retry and breaker
decorators expect. HTTP/1.1 keep-alive through one http.client connection per worker thread
(urllib.parse for the URL; urllib.request would open a new connection per call).

    PYTHONPATH=python python3 examples/python/http_engine.py http://127.0.0.1:8080 \\
        "hello there" "and another" --workers 4 --model llama

Errors (as in the C engine): 429/529 -> Overloaded (Retry-After / retry-after-ms kept as
``retry_after``), 5xx, 409, 425, connection refused or reset, a stream that ends without [DONE]
and without a finish reason -> Unavailable, 408 and a passed deadline -> TimedOut, the token ->
Canceled, 501 -> NotSupported, other 4xx -> InvalidArgument. An error event inside a stream
fails the request after the output already written (the retry decorator never retries once
output reached a stream callback).

Deadline and token: every socket wait is bounded by the time left before the deadline, and a
watchdog thread (one per engine, started with the first call) checks the running requests every
20 ms and shuts down the socket of one whose token fired or deadline passed, so a silent server
cannot hold a canceled request.
"""
import argparse
import email.utils
import http.client
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "python"))
import libswarm  # noqa: E402

_STATUS_CLASSES = (
    ((429, 529), libswarm.errors.Overloaded),
    ((408,), libswarm.errors.TimedOut),
    ((501,), libswarm.errors.NotSupported),
    ((409, 425), libswarm.errors.Unavailable),
)


def error_for_status(status, message, retry_after=0.0):
    """The swarm exception for an HTTP status (200 excluded)."""
    cls = libswarm.errors.InternalError
    for codes, c in _STATUS_CLASSES:
        if status in codes:
            cls = c
            break
    else:
        if 500 <= status <= 599:
            cls = libswarm.errors.Unavailable
        elif 400 <= status <= 499:
            cls = libswarm.errors.InvalidArgument
    exc = cls(f"HTTP {status}: {message}"[:250])
    exc.retry_after = retry_after
    return exc


def error_for_object(err):
    """The swarm exception for an OpenAI-style error object met inside a body or stream."""
    if isinstance(err, dict):
        msg = str(err.get("message", "(no message)"))
        for key in ("status", "code"):
            v = err.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 400:
                exc = error_for_status(int(v), msg)
                break
        else:
            words = " ".join(str(err.get(k) or "") for k in ("type", "code"))
            if any(w in words for w in ("rate_limit", "overloaded", "quota")):
                cls = libswarm.errors.Overloaded
            elif "timeout" in words:
                cls = libswarm.errors.TimedOut
            elif "server_error" in words or "unavailable" in words:
                cls = libswarm.errors.Unavailable
            elif any(w in words for w in ("invalid", "authentication", "permission",
                                          "not_found")):
                cls = libswarm.errors.InvalidArgument
            else:
                cls = libswarm.errors.InternalError
            exc = cls(f"stream error: {msg}"[:250])
    else:
        exc = libswarm.errors.InternalError(f"stream error: {err}"[:250])
    return exc


def parse_retry_after(headers):
    """Seconds from retry-after-ms or Retry-After (seconds or an HTTP-date); 0 if none."""
    ms = headers.get("retry-after-ms")
    try:
        if ms is not None and float(ms) > 0:
            return float(ms) / 1000.0
    except ValueError:
        pass
    ra = headers.get("retry-after")
    if not ra:
        return 0.0
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra).timestamp()
        return max(0.0, when - time.time())
    except (TypeError, ValueError):
        return 0.0


class OpenAIEngine:
    """A Python engine (``infer(request)``) for OpenAI-compatible servers. Thread-safe: each
    worker thread keeps its own kept-alive connection, keyed by the OS thread id (the pool's
    workers are C threads: ctypes gives each callback a fresh Python thread state, so
    ``threading.local`` would forget the connection between calls)."""

    def __init__(self, base_url, model="default", api_key=None, system_prompt=None, api="chat",
                 stream=True, reuse=True, connect_timeout=5.0, on_finish=None, name="http-py"):
        u = urllib.parse.urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise libswarm.errors.InvalidArgument(f"bad base URL {base_url!r}")
        if api not in ("chat", "completions"):
            raise libswarm.errors.InvalidArgument("api must be 'chat' or 'completions'")
        self.name = name
        self.scheme, self.host = u.scheme, u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        prefix = u.path.rstrip("/")
        if prefix.endswith("/v1"):
            prefix = prefix[:-3]
        self.path = prefix + ("/v1/chat/completions" if api == "chat" else "/v1/completions")
        self.health_path = prefix + "/v1/models"
        self.model, self.api, self.stream, self.reuse = model, api, stream, reuse
        self.system_prompt = system_prompt
        self.connect_timeout = connect_timeout
        self.on_finish = on_finish
        key = os.environ.get("OPENAI_API_KEY") if api_key is None else api_key
        self.headers = {"Content-Type": "application/json",
                        "Accept": "application/json, text/event-stream"}
        if key:
            self.headers["Authorization"] = "Bearer " + key
        self._lock = threading.Lock()
        self._conns = {}  # OS thread id -> its connection; closed by close()
        self._active = {}  # OS thread id -> (request view, socket) of a running call
        self._watcher = None
        self._closed = False
        self.connects = 0

    # -- connections ------------------------------------------------------------------------
    def _conn(self, fresh=False):
        tid = threading.get_ident()
        with self._lock:
            c = self._conns.get(tid)
        if c is not None and (fresh or not self.reuse):
            c.close()
            c = None
        if c is None:
            cls = (http.client.HTTPSConnection if self.scheme == "https"
                   else http.client.HTTPConnection)
            c = cls(self.host, self.port, timeout=self.connect_timeout)
            with self._lock:
                self._conns[tid] = c
        return c

    def _drop_conn(self):
        with self._lock:
            c = self._conns.pop(threading.get_ident(), None)
        if c is not None:
            c.close()

    # -- the watchdog ------------------------------------------------------------------------
    def _watch(self, request, sock):
        with self._lock:
            self._active[threading.get_ident()] = (request, sock)
            if self._watcher is None and not self._closed:
                self._watcher = threading.Thread(target=self._watch_loop, daemon=True,
                                                 name=f"{self.name}-watchdog")
                self._watcher.start()

    def _unwatch(self):
        with self._lock:
            self._active.pop(threading.get_ident(), None)

    def _watch_loop(self):
        """Wakes reads blocked on a silent server once their request should stop. The request
        views are used under the lock, which their calls take (in _unwatch) before returning."""
        while True:
            time.sleep(0.02)
            with self._lock:
                if self._closed:
                    return
                for tid, (req, sock) in list(self._active.items()):
                    try:
                        stop = req.stop_reason()
                    except libswarm.errors.SwarmError:  # a call that ended without unwatching
                        del self._active[tid]
                        continue
                    if stop != 0:
                        del self._active[tid]
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass

    def _send(self, method, path, body, timeout, request=None):
        """Sends the request on this thread's connection and returns the response (headers
        read). A kept-alive connection the server closed meanwhile is retried once, fresh."""
        for attempt in (0, 1):
            c = self._conn(fresh=attempt == 1)
            reused = c.sock is not None
            try:
                if c.sock is None:
                    c.connect()
                    with self._lock:
                        self.connects += 1
                c.sock.settimeout(max(0.001, timeout))
                if request is not None:
                    self._watch(request, c.sock)
                hdrs = dict(self.headers)
                if not self.reuse:
                    hdrs["Connection"] = "close"
                c.request(method, path, body=body, headers=hdrs)
                sock = c.sock
                return c.getresponse(), sock
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._drop_conn()
                if request is not None:
                    self._check(request)  # the watchdog cut it
                if not reused or attempt == 1:
                    raise libswarm.errors.Unavailable("connection lost") from None
            except socket.timeout:
                self._drop_conn()
                raise libswarm.errors.TimedOut("timed out waiting for the server") from None
            except OSError as e:  # refused, unreachable, DNS
                self._drop_conn()
                if request is not None:
                    self._check(request)
                raise libswarm.errors.Unavailable(f"{type(e).__name__}: {e}"[:200]) from None
        raise libswarm.errors.Unavailable("connection lost")

    # -- the request body -------------------------------------------------------------------
    def body(self, request):
        text = request.payload.decode("utf-8", "replace")
        o = {"model": request.model_version or self.model}
        extra = {}
        if self.api == "chat":
            msgs = None
            s = text.lstrip()
            if s[:1] in ("[", "{"):
                try:
                    pj = json.loads(s)
                except ValueError:
                    pj = None
                if isinstance(pj, list):
                    msgs = pj
                elif isinstance(pj, dict) and isinstance(pj.get("messages"), list):
                    msgs = pj.pop("messages")
                    extra = {k: v for k, v in pj.items() if k not in ("stream",
                                                                        "stream_options")}
            if msgs is None:
                msgs = ([{"role": "system", "content": self.system_prompt}]
                        if self.system_prompt is not None else [])
                msgs.append({"role": "user", "content": text})
            o["messages"] = msgs
        else:
            o["prompt"] = text
        if request.max_tokens > 0:
            o["max_tokens"] = request.max_tokens
        o["temperature"] = request.temperature
        if 0 < request.top_p < 1:
            o["top_p"] = request.top_p
        if request.seed:
            o["seed"] = request.seed
        for k, v in request.extras.items():
            if k == "stop":
                o["stop"] = [v]
                continue
            try:
                pv = json.loads(v)
                o[k] = v if isinstance(pv, str) or pv is None else pv
            except ValueError:
                o[k] = v
        for k, v in extra.items():
            o.setdefault(k, v)
        o["stream"] = bool(self.stream)
        if self.stream:
            o["stream_options"] = {"include_usage": True}
        return json.dumps(o).encode()

    # -- the engine -------------------------------------------------------------------------
    @staticmethod
    def _left(request):
        """Seconds before the deadline (None: no deadline)."""
        if request.deadline_ns in (0, (1 << 63) - 1):
            return None
        return (request.deadline_ns - libswarm.now_ns()) / 1e9

    def _check(self, request):
        rc = request.stop_reason()
        if rc == libswarm.errors.TimedOut.code:
            raise libswarm.errors.TimedOut("deadline passed during the call")
        if rc == libswarm.errors.Canceled.code:
            raise libswarm.errors.Canceled("canceled during the call")

    def infer(self, request):
        self._check(request)
        left = self._left(request)
        timeout = 300.0 if left is None else left
        streaming = False
        try:
            resp, sock = self._send("POST", self.path, self.body(request), timeout, request)
            ctype = resp.getheader("Content-Type", "")
            if resp.status != 200:
                try:
                    data = resp.read()  # the whole (small) error body: the connection is reusable
                except OSError:
                    data = b""
                    self._drop_conn()
                raise error_for_status(resp.status, data[:400].decode("utf-8", "replace"),
                                       parse_retry_after(resp.headers))
            if "text/event-stream" in ctype:
                streaming = True
                return self._stream(request, resp, sock)  # unwatches when it ends
            return self._whole(request, resp)
        finally:
            if not streaming:
                self._unwatch()

    def _finish(self, request, reason, usage, deltas):
        if usage:
            request.set_usage(int(usage.get("prompt_tokens") or 0),
                              int(usage.get("completion_tokens") or 0))
        elif deltas:
            request.set_usage(0, deltas)
        if reason and self.on_finish is not None:
            self.on_finish(request.id, reason)

    def _text_of(self, choice, chunk):
        if self.api == "completions":
            return choice.get("text")
        m = choice.get("delta" if chunk else "message") or {}
        return m.get("content") if isinstance(m, dict) else None

    def _whole(self, request, resp):
        try:
            data = resp.read()
        except (socket.timeout, OSError):
            self._drop_conn()
            self._check(request)
            raise libswarm.errors.Unavailable("connection lost while reading the body") from None
        try:
            obj = json.loads(data)
        except ValueError:
            self._check(request)  # a body cut short by the watchdog
            raise libswarm.errors.InternalError("unparsable body: " +
                                             data[:120].decode("utf-8", "replace")) from None
        if obj.get("error") is not None:
            raise error_for_object(obj["error"])
        choices = obj.get("choices")
        if not isinstance(choices, list):
            raise libswarm.errors.InternalError("no choices in the response")
        first = choices[0] if choices else {}
        text = self._text_of(first, False) or ""
        self._finish(request, first.get("finish_reason"), obj.get("usage"), 0)
        return text.encode()

    def _stream(self, request, resp, sock):
        """A generator: each content delta is yielded (and so written) as it arrives."""
        reason, usage, deltas, done = None, None, 0, False
        data_lines, event = [], ""
        try:
            while True:
                self._check(request)
                left = self._left(request)
                if left is not None and sock is not None:
                    sock.settimeout(max(0.001, left))
                try:
                    raw = resp.readline(1 << 20)  # de-chunked by http.client
                except socket.timeout:
                    self._check(request)
                    raise libswarm.errors.TimedOut("deadline passed during the stream") from None
                except OSError:
                    raw = b""
                if not raw:
                    self._check(request)  # the watchdog may have cut it
                    break  # the server closed the stream
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith(":"):
                    continue  # a comment / keep-alive ping
                if line:
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "data":
                        data_lines.append(value)
                    elif field == "event":
                        event = value
                    continue
                # A blank line ends the event.
                payload, data_lines, ev, event = "\n".join(data_lines), [], event, ""
                if not payload:
                    continue
                if payload == "[DONE]":
                    done = True
                    try:
                        resp.read()  # the end of the body, so the connection is reusable
                    except OSError:
                        self._drop_conn()
                    break
                try:
                    obj = json.loads(payload)
                except ValueError:
                    raise libswarm.errors.InternalError("unparsable stream event: " +
                                                     payload[:120]) from None
                if isinstance(obj, dict) and obj.get("error") is not None:
                    raise error_for_object(obj["error"])  # after the output already written
                if ev == "error":
                    raise libswarm.errors.Unavailable("stream error event")
                choices = obj.get("choices") or []
                if choices:
                    text = self._text_of(choices[0], True)
                    if text:
                        deltas += 1
                        yield text.encode()
                    if choices[0].get("finish_reason"):
                        reason = choices[0]["finish_reason"]
                if obj.get("usage"):
                    usage = obj["usage"]
        finally:
            self._unwatch()
            if not done:
                self._drop_conn()  # mid-stream: the connection cannot be reused
        self._finish(request, reason, usage, deltas)
        if not done and reason is None:
            raise libswarm.errors.Unavailable("stream ended without [DONE]")

    def health(self):
        try:
            resp, _ = self._send("GET", self.health_path, None, 2.0)
            resp.read()
        except libswarm.errors.SwarmError as e:
            return e.code
        if resp.status == 200:
            return 0
        return error_for_status(resp.status, "").code

    def close(self):
        with self._lock:
            self._closed = True
            conns, self._conns = list(self._conns.values()), {}
        for c in conns:
            c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("prompts", nargs="*", default=["Once upon a time"])
    ap.add_argument("--model", default=os.environ.get("SWARM_MODEL", "default"))
    ap.add_argument("--api", choices=("chat", "completions"), default="chat")
    ap.add_argument("--system", default=None, help="system prompt")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    ap.add_argument("--no-stream", action="store_true")
    args = ap.parse_args()

    impl = OpenAIEngine(args.url, model=args.model, api=args.api, system_prompt=args.system,
                        stream=not args.no_stream)
    engine = libswarm.Engine.from_python(impl, name="http-py").retry(3, base=0.05)
    if engine.health() != 0:
        print(f"{args.url} is not answering GET /v1/models: "
              f"{libswarm.errors.err_name(engine.health())}", file=sys.stderr)
        return 2
    pool = libswarm.Pool(engine, workers=args.workers, max_workers=max(1, args.workers))
    futs = [pool.submit(p, timeout=args.timeout) for p in args.prompts]
    bad = 0
    for p, f in zip(args.prompts, futs):
        r = f.result()
        bad += not r.ok
        shown = r.output.decode("utf-8", "replace") if r.ok else \
            f"{libswarm.errors.err_name(r.status)}: {r.error}"
        print(f"{p!r} -> {shown}")
    pool.stop()
    pool.close()
    engine.close()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
