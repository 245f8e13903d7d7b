# SPDX-License-Identifier: MIT
"""The channel fast paths (issue 11, item 10): every data call first tries the non-blocking C
call with the GIL held and only then waits. These tests pin the promises that must survive
that: batches that are partly sent/taken without waiting and finished by the blocking path,
messages validated one by one, destroy() from another thread in the middle of fast calls
(HandleClosed, never a crash), and exactly-once under Ctrl-C in a hot loop, where the signal
lands while C runs a non-blocking call rather than while a call waits."""
import os
import subprocess
import sys
import textwrap
import threading
import time
import unittest

import libswarm as swarm


def spawn(fn, *args):
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


def run_child(code: str, timeout: float = 120):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(swarm.__file__))] +
        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("SWARM_LIBRARY", swarm.library_path())
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(code)],
                          env=env, capture_output=True, text=True, timeout=timeout)


class TestBatchesAcrossFastAndBlocking(unittest.TestCase):
    def test_send_batch_larger_than_capacity_arrives_whole_and_in_order(self):
        # The fast attempt sends what fits (4), the blocking path the rest while a consumer
        # drains: nothing lost, duplicated or reordered, and the handle table ends empty.
        for kind in ("bytes", "objects"):
            with self.subTest(kind):
                if kind == "bytes":
                    ch = swarm.Channel(4, 8)
                    items = [i.to_bytes(8, "little") for i in range(200)]
                else:
                    ch = swarm.ObjectChannel(4)
                    items = [("item", i) for i in range(200)]
                got = []

                def consume():
                    while len(got) < len(items):
                        got.extend(ch.recv_batch(3, timeout=10))
                th = spawn(consume)
                self.assertEqual(ch.send_batch(items), len(items))
                th.join(30)
                self.assertEqual(got, items)
                if kind == "objects":
                    self.assertEqual(ch.pending, 0)
                ch.destroy()

    def test_send_batch_timeout_zero_sends_what_fits(self):
        for ch, items in ((swarm.Channel(3, 8), [b"%08d" % i for i in range(5)]),
                          (swarm.ObjectChannel(3), list(range(5)))):
            with ch:
                self.assertEqual(ch.send_batch(items, timeout=0), 3)
                self.assertEqual(ch.recv_batch(10), items[:3])
                if isinstance(ch, swarm.ObjectChannel):
                    self.assertEqual(ch.pending, 0)   # the 2 unsent were released

    def test_recv_batch_waits_for_min_items_after_a_partial_fast_take(self):
        for kind in ("bytes", "objects"):
            with self.subTest(kind):
                ch = swarm.Channel(16, 8) if kind == "bytes" else swarm.ObjectChannel(16)
                mk = (lambda i: b"%08d" % i) if kind == "bytes" else (lambda i: i)
                ch.send_batch([mk(0), mk(1)])          # 2 ready: the fast attempt takes them

                def late():
                    time.sleep(0.05)
                    ch.send_batch([mk(2), mk(3)])
                th = spawn(late)
                got = ch.recv_batch(8, min_items=4, timeout=30)
                th.join(10)
                self.assertEqual(got, [mk(i) for i in range(4)])
                ch.destroy()

    def test_recv_batch_with_linger_returns_what_is_ready_when_nothing_follows(self):
        # min reached by the fast attempt; linger waits for more, then returns (a close after
        # 20 s would end a hang with the same two items, so the test bounds itself).
        for kind in ("bytes", "objects"):
            with self.subTest(kind):
                ch = swarm.Channel(16, 8) if kind == "bytes" else swarm.ObjectChannel(16)
                mk = (lambda i: b"%08d" % i) if kind == "bytes" else (lambda i: i)
                ch.send_batch([mk(0), mk(1)])
                guard = threading.Timer(20, ch.close)
                guard.start()
                got = ch.recv_batch(8, min_items=1, linger=0.05)
                guard.cancel()
                self.assertEqual(got, [mk(0), mk(1)])
                self.assertFalse(ch.closed)
                ch.destroy()

    def test_recv_batch_with_linger_collects_what_follows(self):
        ch = swarm.ObjectChannel(16)
        ch.send(0)
        stop = threading.Event()

        def trickle():
            for i in range(1, 4):
                time.sleep(0.002)
                ch.send(i)
            stop.set()
        th = spawn(trickle)
        got = ch.recv_batch(4, min_items=1, linger=30, timeout=30)
        th.join(10)
        self.assertEqual(got, [0, 1, 2, 3])     # max reached ends the linger
        ch.destroy()

    def test_recv_batch_huge_max_items_does_not_allocate_it(self):
        # max_items may be up to 2**31-1: one call's buffer is bounded (it returns "up to"
        # max_items), so this neither allocates 16 GiB nor overruns a small buffer.
        for ch, mk in ((swarm.Channel(8, 8), lambda i: b"%08d" % i),
                       (swarm.ObjectChannel(8), lambda i: i)):
            with ch:
                ch.send_batch([mk(i) for i in range(5)])
                self.assertEqual(ch.recv_batch(2**31 - 1), [mk(i) for i in range(5)])
                ch.send(mk(9))
                self.assertEqual(ch.recv_batch(2**31 - 1, min_items=1, timeout=0), [mk(9)])

    def test_bytes_batch_checks_every_message(self):
        with swarm.Channel(8, 8) as ch:
            # Total length right (16 = 2 x 8), each message wrong: refused, nothing sent.
            with self.assertRaises(swarm.InvalidArgument):
                ch.send_batch([b"1234", b"123456789012"])
            with self.assertRaises(TypeError):
                ch.send_batch([b"12345678", "12345678"])
            # A memoryview whose len() is 1 but which holds 8 bytes is one 8-byte message.
            mv = memoryview(b"abcdefgh").cast("Q")
            self.assertEqual(ch.send_batch([mv, bytearray(b"ABCDEFGH")]), 2)
            self.assertEqual(ch.recv_batch(8), [b"abcdefgh", b"ABCDEFGH"])
            self.assertEqual(len(ch), 0)
        with swarm.Channel(8, 12, framed=True) as ch:
            self.assertEqual(ch.send_batch([b"", b"x", b"12345678"]), 3)
            self.assertEqual(ch.recv_batch(8), [b"", b"x", b"12345678"])
            with self.assertRaises(swarm.InvalidArgument):
                ch.send_batch([b"123456789"])       # > elem_size - 4

    def test_single_calls_accept_bytes_like_and_check_length(self):
        with swarm.Channel(8, 4) as ch:
            ch.send(bytearray(b"abcd"))
            ch.send(memoryview(b"efgh"))
            ch.try_send(b"ijkl")
            with self.assertRaises(swarm.InvalidArgument):
                ch.send(b"abc")
            with self.assertRaises(swarm.InvalidArgument):
                ch.try_send(b"abcde")
            with self.assertRaises(TypeError):
                ch.send("abcd")
            self.assertEqual([ch.recv(), ch.try_recv(), ch.recv(timeout=1)],
                             [b"abcd", b"efgh", b"ijkl"])
            with self.assertRaises(swarm.ChannelEmpty):
                ch.try_recv()


class TestDestroyDuringFastCalls(unittest.TestCase):
    def test_destroy_from_another_thread_raises_handleclosed_never_crashes(self):
        # Threads hammer every fast path while the main thread destroys the channel: each must
        # end with HandleClosed (or Closed from the close that destroy starts with). A child
        # process, so that a crash fails this test instead of the whole run.
        r = run_child("""
            import threading, libswarm as swarm
            bad = []
            def hammer(ch, op, ready):
                ready.set()
                try:
                    while True:
                        op(ch)
                except (swarm.HandleClosed, swarm.Closed):
                    pass
                except Exception as exc:
                    bad.append(repr(exc))
            def ops(kind):
                if kind == "bytes":
                    m = b"12345678"
                    yield lambda c: (c.try_send(m), c.try_recv())
                    yield lambda c: (c.send(m), c.recv())
                    yield lambda c: (c.send_batch([m] * 5), c.recv_batch(5))
                else:
                    yield lambda c: (c.try_send(1), c.try_recv())
                    yield lambda c: (c.send(1), c.recv())
                    yield lambda c: (c.send_batch([1] * 5), c.recv_batch(5))
            for rnd in range(40):
                for kind in ("bytes", "objects"):
                    ch = swarm.Channel(64, 8) if kind == "bytes" else swarm.ObjectChannel(64)
                    ths = []
                    for op in ops(kind):
                        ready = threading.Event()
                        th = threading.Thread(target=hammer, args=(ch, op, ready))
                        th.start()
                        ready.wait()
                        ths.append(th)
                    ch.destroy()
                    for th in ths:
                        th.join(30)
                        assert not th.is_alive()
                    for call in (lambda: ch.send(b"12345678" if kind == "bytes" else 1),
                                 ch.recv, ch.try_recv, lambda: ch.recv_batch(2)):
                        try:
                            call()
                            bad.append("accepted after destroy")
                        except swarm.HandleClosed:
                            pass
            print("bad", len(bad), bad[:3])
        """)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertIn("bad 0 []", r.stdout)


HOT_LOOP = """
import libswarm as swarm, os, random, signal, sys, threading, time
KIND = %r
SIGNALS = 400
sys.setswitchinterval(0.0005)   # the firing thread needs the GIL promptly (default 5 ms)
done = threading.Event()
started = threading.Event()
kis = 0
def firing():
    # One signal at a time: the next only once the main thread has caught the previous
    # KeyboardInterrupt (a second Ctrl-C while the binding keeps the elements of the first is
    # a different, documented limit), at a random instant of its loop.
    started.wait()
    rnd = random.Random(7)
    for _ in range(SIGNALS):
        time.sleep(rnd.uniform(0.0002, 0.002))
        seen = kis
        os.kill(os.getpid(), signal.SIGINT)
        end = time.monotonic() + 5
        while kis == seen and time.monotonic() < end:
            time.sleep(0.0001)
    done.set()
mk = (lambda i: i.to_bytes(8, "little")) if KIND == "bytes" else (lambda i: i)
ch = swarm.Channel(1 << 16, 8) if KIND == "bytes" else swarm.ObjectChannel(1 << 16)
"""


class TestCtrlCInHotLoops(unittest.TestCase):
    """SIGINT at random instants while the main thread sends or receives as fast as it can:
    most signals land while C runs a non-blocking call. A KeyboardInterrupt raised inside the
    binding must report what happened (``.sent`` for sends; a taken element goes to the stash
    for receives). One raised in the caller's own frame, after the call returned, is Python's
    window (queue.Queue has it too): a send then happened, a received value may be lost."""

    def test_send_reports_whether_it_sent(self):
        for kind in ("bytes", "objects"):
            with self.subTest(kind):
                code = HOT_LOOP % kind + """
got, errs = [], []
def consume():
    try:
        while True:
            got.extend(ch.recv_batch(256))
    except swarm.Closed:
        pass
    except Exception as exc:
        errs.append(repr(exc))
cons = threading.Thread(target=consume)
cons.start()
threading.Thread(target=firing, daemon=True).start()
sent, i, kis, inner = [], 0, 0, 0
def loop():
    global i, kis, inner, sent
    started.set()
    while not done.is_set():
        try:
            if i % 4 == 3:
                i += 2
                two = [mk(i - 2), mk(i - 1)]
                n = ch.send_batch(two)
                sent += [i - 2, i - 1][:n]
            else:
                i += 1
                one = mk(i - 1)
                ch.send(one)
                sent.append(i - 1)
        except KeyboardInterrupt as ki:
            kis += 1
            tb = ki.__traceback__
            # Only the send is a call on its line: a KeyboardInterrupt there in this frame
            # was raised after the send returned.
            batch = tb.tb_lineno == LINE_B
            these = [i - 2, i - 1] if batch else [i - 1]
            if tb.tb_next is None:
                if tb.tb_lineno in (LINE_B, LINE_1):   # raised here, after the call returned
                    sent += these
            else:
                inner += 1
                k = getattr(ki, "sent", 0)         # none: raised before anything moved
                sent += these[:k]
while True:
    try:
        loop()
        break
    except KeyboardInterrupt:   # at the loop's own condition or back jump: nothing in flight
        kis += 1
while True:      # a last signal may still be on its way
    try:
        ch.close()
        cons.join()
        break
    except KeyboardInterrupt:
        pass
rcv = [int.from_bytes(x, "little") for x in got] if KIND == "bytes" else got
print("kis", kis, "inner", inner, "errs", errs[:3], "exact", sorted(rcv) == sorted(sent),
      "dups", len(rcv) - len(set(rcv)), "pending",
      ch.pending if KIND == "objects" else 0)
"""
                lines = code.splitlines()
                code = code.replace("LINE_B", str(lines.index(
                    "                n = ch.send_batch(two)") + 1)).replace(
                    "LINE_1", str(lines.index("                ch.send(one)") + 1))
                r = run_child(code)
                self.assertEqual(r.returncode, 0, r.stderr[-3000:])
                self.assertIn("errs [] exact True dups 0 pending 0", r.stdout)
                self.assertGreater(int(r.stdout.split()[1]), 0, r.stdout)

    def test_recv_keeps_what_it_took(self):
        for kind in ("bytes", "objects"):
            with self.subTest(kind):
                code = HOT_LOOP % kind + """
def produce():
    i = 0
    while not done.is_set():
        ch.send_batch([mk(j) for j in range(i, i + 64)])
        i += 64
    produced.append(i)
    ch.close()
produced = []
prod = threading.Thread(target=produce)
prod.start()
threading.Thread(target=firing, daemon=True).start()
got, kis, maybe_lost, step = [], 0, 0, 0
def loop():
    global kis, maybe_lost, step
    started.set()
    while True:
        try:
            if step % 3 == 2:
                xs = ch.recv_batch(4)
                got.extend(xs)
            else:
                x = ch.recv()
                got.append(x)
            step += 1
        except swarm.Closed:
            return
        except KeyboardInterrupt as ki:
            kis += 1
            tb = ki.__traceback__
            if tb.tb_next is None and tb.tb_lineno in (LINE_B, LINE_1):
                maybe_lost += 4 if tb.tb_lineno == LINE_B else 1   # Python's window
while True:
    try:
        loop()
        break
    except KeyboardInterrupt:   # at the loop's back jump: nothing in flight
        kis += 1
while True:      # a last signal may still be on its way
    try:
        prod.join()
        break
    except KeyboardInterrupt:
        pass
rcv = [int.from_bytes(x, "little") for x in got] if KIND == "bytes" else got
missing = len(set(range(produced[0])) - set(rcv))
print("kis", kis, "dups", len(rcv) - len(set(rcv)), "ok", missing <= maybe_lost,
      "missing", missing, "maybe_lost", maybe_lost, "pending",
      ch.pending if KIND == "objects" else 0)
"""
                lines = code.splitlines()
                line_b = lines.index("                xs = ch.recv_batch(4)") + 1
                line_1 = lines.index("                x = ch.recv()") + 1
                code = code.replace("LINE_B", str(line_b)).replace("LINE_1", str(line_1))
                r = run_child(code)
                self.assertEqual(r.returncode, 0, r.stderr[-3000:])
                self.assertIn("dups 0 ok True", r.stdout)
                self.assertIn("pending 0", r.stdout)
                self.assertGreater(int(r.stdout.split()[1]), 0, r.stdout)


if __name__ == "__main__":
    unittest.main()
