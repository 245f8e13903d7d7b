# SPDX-License-Identifier: MIT
"""Issue 11, defects 3 and 4: Ctrl-C during blocking calls, and fork().

Each case runs in a child interpreter: a helper thread sends the process SIGINT while the main
thread blocks, and the child prints how long KeyboardInterrupt took. The bound asserted here is
deliberately loose (the machine is noisy; the target, 100 ms, is measured by the child's own
printout and reported in the note): before the fix these calls never returned, or only when
their own timeout (30 s) elapsed."""
import os
import subprocess
import sys
import textwrap
import unittest

import libswarm as swarm

PRELUDE = """
import libswarm as swarm, os, signal, sys, threading, time
def ctrl_c_after(delay):
    def fire():
        time.sleep(delay)
        t_sig[0] = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)
    t_sig = [0.0]
    threading.Thread(target=fire, daemon=True).start()
    return t_sig
def expect_interrupt(fn):
    t = ctrl_c_after(0.2)
    try:
        fn()
    except KeyboardInterrupt:
        print("interrupted_ms %.1f" % ((time.monotonic() - t[0]) * 1e3))
        return True
    print("returned without KeyboardInterrupt")
    return False
"""


def run_child(body: str, timeout: float = 60):
    code = PRELUDE + textwrap.dedent(body)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(swarm.__file__))] +
        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("SWARM_LIBRARY", swarm.library_path())
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], env=env,
                          capture_output=True, text=True, timeout=timeout)


def interrupted_ms(out: str):
    return [float(line.split()[1]) for line in out.splitlines()
            if line.startswith("interrupted_ms")]


class TestCtrlC(unittest.TestCase):
    CASES = {
        "recv": "ch = swarm.Channel(4, 8)\nexpect_interrupt(ch.recv)",
        "recv_timeout": "ch = swarm.Channel(4, 8)\nexpect_interrupt(lambda: ch.recv(timeout=30))",
        "obj_recv": "ch = swarm.ObjectChannel(4)\nexpect_interrupt(ch.recv)",
        "iterate": "ch = swarm.ObjectChannel(4)\nexpect_interrupt(lambda: [x for x in ch])",
        "recv_batch": "ch = swarm.Channel(4, 8)\n"
                      "expect_interrupt(lambda: ch.recv_batch(8, min_items=4))",
        "send_full": "ch = swarm.ObjectChannel(1)\nch.send(0)\n"
                     "expect_interrupt(lambda: ch.send(1))",
        "send_batch_full": "ch = swarm.Channel(1, 8)\n"
                           "expect_interrupt(lambda: ch.send_batch([b'12345678'] * 4))",
        "cancel_token_recv": "ch = swarm.Channel(4, 8)\ntok = swarm.CancelToken()\n"
                             "expect_interrupt(lambda: ch.recv(cancel=tok))",
        "submit_full": """
            gate = threading.Event()
            eng = swarm.Engine.from_python(lambda r: gate.wait(30) and b"")
            pool = swarm.Pool(eng, workers=1, queue_capacity=1)
            pool.submit(b""); time.sleep(0.1); pool.submit(b"")
            expect_interrupt(lambda: pool.submit(b""))
            gate.set()
        """,
        "pool_stop_drain": """
            eng = swarm.Engine.from_python(lambda r: time.sleep(0.02) or b"")
            pool = swarm.Pool(eng, workers=1, queue_capacity=4096)
            for _ in range(500):
                pool.submit(b"")
            expect_interrupt(pool.stop)
        """,
    }

    def test_every_blocking_call_raises_keyboardinterrupt(self):
        for name, body in self.CASES.items():
            with self.subTest(name):
                r = run_child(textwrap.dedent(body) + "\nos._exit(0)\n")
                self.assertEqual(r.returncode, 0, r.stderr[-2000:])
                ms = interrupted_ms(r.stdout)
                self.assertEqual(len(ms), 1, r.stdout + r.stderr[-2000:])
                self.assertLess(ms[0], 5000)

    def test_no_item_lost_or_duplicated_when_interrupted(self):
        # Rounds: once the main thread is parked in a receive, a helper sends an item and at
        # once SIGINT (or SIGINT first, then the item): C hands the item over at about the
        # instant the signal lands. Every item must come out exactly once; one taken with the
        # signal is kept and returned by the next receive.
        r = run_child("""
            N = 300
            ch = swarm.ObjectChannel(8)
            def helper():
                for i in range(N):
                    while ch.stats()["blocked_receivers"] == 0:
                        time.sleep(0.0002)
                    if i % 3 == 0:
                        os.kill(os.getpid(), signal.SIGINT)
                        ch.send(i)
                    elif i % 3 == 1:
                        ch.send(i)
                        os.kill(os.getpid(), signal.SIGINT)
                    else:
                        ch.send_batch([i])
                        os.kill(os.getpid(), signal.SIGINT)
                ch.close()
            th = threading.Thread(target=helper)
            th.start()
            got, kis = [], 0
            while True:
                try:
                    if len(got) % 2:
                        got.extend(ch.recv_batch(4, min_items=2, linger=0.001))
                    else:
                        got.append(ch.recv())
                except swarm.Closed:
                    break
                except KeyboardInterrupt:
                    kis += 1
            th.join()
            print("kis", kis, "ok", sorted(got) == list(range(N)), len(got))
        """, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertIn("ok True 300", r.stdout)
        kis = int(r.stdout.split()[1])
        self.assertGreater(kis, 0)

    def test_send_interrupted_is_whole_or_absent(self):
        r = run_child("""
            ch = swarm.Channel(2, 16, framed=True)
            ch.send(b"a"); ch.send(b"b")
            t = ctrl_c_after(0.1)
            try:
                ch.send(b"c")
                sent = 1
            except KeyboardInterrupt as ki:
                sent = ki.sent
            got = [ch.recv(), ch.recv()]
            if sent:
                got.append(ch.recv())
            print("sent", sent, got[:2] == [b"a", b"b"], len(ch))
        """)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertIn("sent 0 True 0", r.stdout)


class TestFork(unittest.TestCase):
    def test_fork_child_sees_dead_handles_and_exits(self):
        # Defect 4: with a pool alive, a fork()ed child hung at exit (atexit hook) and its
        # inherited pool accepted submit() and never ran it.
        r = run_child("""
            eng = swarm.Engine.from_python(lambda r: b"ok")
            pool = swarm.Pool(eng, workers=2)
            ch = swarm.ObjectChannel(4)
            print("parent", pool.submit(b"").result(10).output)
            pid = os.fork()
            if pid == 0:
                for what, fn in (("submit", lambda: pool.submit(b"")),
                                 ("send", lambda: ch.send(1)),
                                 ("infer", lambda: eng.infer(b""))):
                    try:
                        fn()
                        print("child", what, "accepted")
                    except swarm.HandleClosed as exc:
                        print("child", what, "fork" in str(exc))
                sys.stdout.flush()
                sys.exit(0)          # atexit hooks run: must not hang
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    print("child exit", os.waitstatus_to_exitcode(status))
                    break
                time.sleep(0.01)
            else:
                os.kill(pid, signal.SIGKILL)
                print("child hung")
            print("parent again", pool.submit(b"").result(10).output)
            ch.send(2); print("parent chan", ch.recv())
        """)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        out = r.stdout
        for what in ("submit", "send", "infer"):
            self.assertIn(f"child {what} True", out)
        self.assertIn("child exit 0", out)
        self.assertIn("parent again b'ok'", out)
        self.assertIn("parent chan 2", out)


if __name__ == "__main__":
    unittest.main()
