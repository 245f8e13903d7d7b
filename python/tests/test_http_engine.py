# SPDX-License-Identifier: MIT
"""The pure-Python HTTP engine (examples/python/http_engine.py) served by the pool, against the
third-party OpenAI-compatible server @dwmkerr/mock-llm (tests/node, `make deps`) and, for what
mock-llm cannot produce (Retry-After headers, failures after streamed output), the project's
stub. Both servers run on free loopback ports for the class and are always stopped. Skipped when
node or the npm package is absent."""
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

import libswarm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


servers = _load("swarm_test_http_servers", os.path.join(ROOT, "tests", "http_servers.py"))
HAVE = (libswarm.has_symbol("swarm_engine_create") and libswarm.has_symbol("swarm_pool_create") and
        servers.mock_llm_available() and
        os.path.isfile(os.path.join(ROOT, "examples", "python", "http_engine.py")))
if HAVE:
    httpeng = _load("swarm_example_http_engine",
                    os.path.join(ROOT, "examples", "python", "http_engine.py"))


@unittest.skipUnless(HAVE, "node, tests/node/node_modules/@dwmkerr/mock-llm or the engine "
                           "module is absent")
class TestHttpEngine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Expected engine errors are logged by the binding with tracebacks: keep output quiet.
        cls._log_level = logging.getLogger("swarm").level
        logging.getLogger("swarm").setLevel(logging.CRITICAL)
        cls._dir = tempfile.TemporaryDirectory(prefix="swarm-pyhttp-")
        cls.mock, cls.url = servers.start_mock_llm(cls._dir.name)
        if cls.mock is None:
            cls._dir.cleanup()
            raise unittest.SkipTest("mock-llm did not start")
        cls.stub, cls.stub_url = servers.start_stub()
        if cls.stub is None:
            servers.stop(cls.mock)
            cls._dir.cleanup()
            raise RuntimeError("openai_stub.py did not start")

    @classmethod
    def tearDownClass(cls):
        servers.stop(cls.mock)
        servers.stop(cls.stub)
        cls._dir.cleanup()
        logging.getLogger("swarm").setLevel(cls._log_level)

    def engine(self, url=None, **kw):
        kw.setdefault("api_key", "")
        impl = httpeng.OpenAIEngine(url or self.url, model="test-model", **kw)
        eng = libswarm.Engine.from_python(impl, name="http-py")
        self.addCleanup(eng.close)
        return impl, eng

    # -- mock-llm ---------------------------------------------------------------------------
    def test_plain_chat(self):
        finish = []
        _, e = self.engine(stream=False, on_finish=lambda rid, r: finish.append(r))
        r = e.infer("hello world", timeout=10)
        self.assertEqual(r.output, b"hello world")
        self.assertEqual((r.info["input_units"], r.info["output_units"]), (7, 5))
        self.assertEqual(finish, ["stop"])

    def test_streamed_chat_writes_deltas_as_they_arrive(self):
        _, e = self.engine()
        seen = []
        text = "streaming hello there, friend"
        r = e.infer(text, timeout=10, stream=lambda chunk: seen.append(chunk))
        self.assertEqual(r.output, text.encode())
        n = (len(text) + 3) // 4  # mock-llm streams 4 characters per event
        self.assertEqual(len(seen), n)
        self.assertEqual(r.info["n_chunks"], n)
        self.assertEqual(r.info["output_units"], n)

    def test_params_reach_the_body(self):
        finish = []
        _, e = self.engine(stream=False, api_key="sk-test", system_prompt="be brief",
                           on_finish=lambda rid, r: finish.append(r))
        r = e.infer("echo-params", timeout=10, model_version="m1", temperature=0.25, top_p=0.5,
                    max_tokens=17, seed=99, extras={"stop": "END"})
        self.assertEqual(r.text, "model=m1 temperature=0.25 top_p=0.5 max_tokens=17 seed=99 "
                                 "stop=END n=2 system=be brief auth=Bearer sk-test")
        self.assertEqual(finish, ["length"])

    def test_json_messages_payload(self):
        _, e = self.engine()
        r = e.infer('[{"role": "system", "content": "S"}, {"role": "user", "content": "js"}]',
                    timeout=10)
        self.assertEqual(r.output, b"js")

    def test_error_statuses_map_to_swarm_classes(self):
        cases = [("error-429", libswarm.errors.Overloaded), ("error-503", libswarm.errors.Unavailable),
                 ("error-500", libswarm.errors.Unavailable),
                 ("error-400", libswarm.errors.InvalidArgument),
                 ("error-401", libswarm.errors.InvalidArgument)]
        for stream in (False, True):
            _, e = self.engine(stream=stream)
            for prompt, cls in cases:
                with self.subTest(prompt=prompt, stream=stream):
                    with self.assertRaises(cls) as cm:
                        e.infer(prompt, timeout=10)
                    self.assertEqual(cm.exception.result.output, b"")

    def test_retry_recovers_from_503(self):
        _, e = self.engine(stream=False)
        r = e.retry(3, base=0.001).infer("flaky", timeout=10)
        self.assertEqual(r.output, b"recovered")
        self.assertEqual(r.info["attempts"], 2)

    def test_slow_stream_cut_by_deadline(self):
        _, e = self.engine()
        with self.assertRaises(libswarm.errors.TimedOut) as cm:
            e.infer("slow-stream", timeout=0.3)
        self.assertLess(len(cm.exception.result.output), 4000)  # cut: the reply is ~4 KB
        self.assertEqual(e.infer("after", timeout=10).output, b"after")

    def test_slow_stream_cut_by_token(self):
        _, e = self.engine()
        tok = libswarm.CancelToken()
        self.addCleanup(tok.close)
        seen = []

        def on_chunk(chunk):
            seen.append(chunk)
            if len(seen) == 5:
                tok.cancel()

        with self.assertRaises(libswarm.errors.Canceled):
            e.infer("slow-stream", timeout=30, cancel=tok, stream=on_chunk)
        self.assertGreaterEqual(len(seen), 5)
        self.assertLess(len(seen), 1000)

    def test_token_cuts_a_silent_server(self):
        # A server that accepts connections and never answers: only the watchdog can wake the
        # blocked read. Without it the call would end at its 30 s deadline as TimedOut.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        self.addCleanup(silent.close)
        for stream in (True, False):
            with self.subTest(stream=stream):
                _, e = self.engine(url="http://127.0.0.1:%d" % silent.getsockname()[1],
                                   stream=stream)
                tok = libswarm.CancelToken()
                self.addCleanup(tok.close)
                timer = threading.Timer(0.2, tok.cancel)
                timer.start()
                self.addCleanup(timer.cancel)
                with self.assertRaises(libswarm.errors.Canceled):
                    e.infer("anyone?", timeout=30, cancel=tok)

    def test_health_and_refused(self):
        _, e = self.engine()
        self.assertEqual(e.health(), 0)
        port = servers.free_port()
        _, dead = self.engine(url=f"http://127.0.0.1:{port}")
        self.assertEqual(dead.health(), libswarm.errors.Unavailable.code)
        with self.assertRaises(libswarm.errors.Unavailable):
            dead.infer("anyone?", timeout=5)

    def test_keep_alive_reuses_one_connection(self):
        for reuse in (True, False):
            impl, e = self.engine(stream=False, reuse=reuse)
            for _ in range(10):
                self.assertEqual(e.infer("again", timeout=10).output, b"again")
            self.assertEqual(impl.connects, 1 if reuse else 10)

    def test_served_by_the_pool(self):
        impl, e = self.engine()
        pool = libswarm.Pool(e.retry(3, base=0.001), workers=4, max_workers=4)
        self.addCleanup(pool.close)
        prompts = [f"pool request {i}" for i in range(40)]
        results = pool.map(prompts, timeout=60)
        self.assertEqual([r.output.decode() for r in results], prompts)
        self.assertTrue(all(r.ok for r in results))
        pool.stop()
        self.assertLessEqual(impl.connects, 4 + 2)  # one kept-alive connection per worker

    def test_example_script_serves_prompts_through_the_pool(self):
        env = dict(os.environ)
        env.setdefault("SWARM_LIBRARY", libswarm.library_path())
        r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "python",
                                                         "http_engine.py"),
                            self.url, "first prompt", "second prompt", "third", "--workers", "2"],
                           env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("'second prompt' -> second prompt", r.stdout)

    # -- the project's stub: what mock-llm cannot produce -----------------------------------
    def test_stub_retry_after_headers(self):
        _, e = self.engine(url=self.stub_url)
        for prompt, cls, ns in (("#429", libswarm.errors.Overloaded, 2_000_000_000),
                                ("#429-ms", libswarm.errors.Overloaded, 1_500_000_000),
                                ("#503", libswarm.errors.Unavailable, 1_000_000_000)):
            with self.subTest(prompt=prompt):
                with self.assertRaises(cls) as cm:
                    e.infer(prompt, timeout=10)
                self.assertEqual(cm.exception.result.info["retry_after_ns"], ns)

    def test_stub_error_after_streamed_output_is_not_retried(self):
        _, e = self.engine(url=self.stub_url)
        r = e.retry(3, base=0.001)
        seen = []
        with self.assertRaises(libswarm.errors.Unavailable) as cm:
            r.infer("#midstream-error", timeout=10, stream=seen.append)
        res = cm.exception.result
        self.assertEqual(res.output, b"Echo: #midstream-error")
        self.assertEqual(res.info["attempts"], 1)
        self.assertEqual(r.retry_stats()["after_stream"], 1)

    def test_stub_stream_without_done(self):
        _, e = self.engine(url=self.stub_url)
        with self.assertRaises(libswarm.errors.Unavailable) as cm:
            e.infer("#truncated", timeout=10)
        self.assertIn("[DONE]", cm.exception.result.error)
        self.assertEqual(cm.exception.result.output, b"Echo: #truncated")


if __name__ == "__main__":
    unittest.main()
