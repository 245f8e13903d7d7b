# SPDX-License-Identifier: MIT
"""Issue 11: asyncio. Awaitable send/recv/submit and ``async for`` over a channel, without one
thread per waiter; cancelling an awaiting task never consumes or loses an item. (Before: no
asyncio at all, and ``run_in_executor(None, ch.recv)`` under ``wait_for`` lost an item when the
wait timed out: the abandoned thread swallowed the next one.)"""
import asyncio
import random
import threading
import time
import unittest

import libswarm as swarm


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class TestAsyncChannel(unittest.TestCase):
    def test_async_for_and_send_async(self):
        async def main():
            ch = swarm.ObjectChannel(4)

            async def produce():
                for i in range(200):
                    await ch.send_async(i)
                ch.close()
            task = asyncio.create_task(produce())
            got = [x async for x in ch]
            await task
            ch.destroy()
            return got
        self.assertEqual(run(main()), list(range(200)))

    def test_bytes_channel_async(self):
        async def main():
            ch = swarm.Channel(2, 16, framed=True)
            threading.Timer(0.05, lambda: [ch.send(b"hi"), ch.send(b"there")]).start()
            a = await ch.recv_async()
            b = await ch.recv_async(timeout=10)
            with self.assertRaises(swarm.RecvTimeout):
                await ch.recv_async(timeout=0.01)
            ch.destroy()
            return a, b
        self.assertEqual(run(main()), (b"hi", b"there"))

    def test_wait_for_timeouts_and_cancels_never_lose_items(self):
        # The defect: wait_for(run_in_executor(None, ch.recv), t) lost the item an abandoned
        # thread received after the timeout. Here receivers are cancelled at random, by
        # wait_for timeouts and by cancel(), while a thread produces; every item arrives once.
        N = 2000

        async def main():
            ch = swarm.ObjectChannel(16)
            got = []
            rng = random.Random(7)

            go = threading.Event()

            def produce():
                go.wait(60)       # the first receive times out on an empty channel
                for i in range(N):
                    ch.send(i)
                    if i % 100 == 0:
                        time.sleep(0.002)
                ch.close()
            th = threading.Thread(target=produce)
            th.start()
            closed = False
            timeouts = 0
            while not closed:
                try:
                    got.append(await asyncio.wait_for(ch.recv_async(),
                                                      rng.choice([0.0001, 0.001, 0.01])))
                except asyncio.TimeoutError:
                    timeouts += 1
                    if timeouts == 1:
                        go.set()
                except swarm.Closed:
                    closed = True
                extra = [asyncio.create_task(ch.recv_async()) for _ in range(3)]
                await asyncio.sleep(0)
                for w in extra:
                    if rng.random() < 0.5:
                        w.cancel()
                for w in extra:
                    try:
                        got.append(await w)
                    except asyncio.CancelledError:
                        pass
                    except swarm.Closed:
                        closed = True
            self.assertGreater(timeouts, 0)
            th.join()
            return got
        got = run(main(), timeout=120)
        self.assertEqual(sorted(got), list(range(N)))

    def test_cancelled_sender_sends_nothing(self):
        async def main():
            ch = swarm.ObjectChannel(1)
            await ch.send_async("first")
            t = asyncio.create_task(ch.send_async("second"))
            await asyncio.sleep(0.02)
            t.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await t
            a = ch.try_recv()
            with self.assertRaises(swarm.ChannelEmpty):
                ch.try_recv()
            self.assertEqual(ch.pending, 0)
            ch.destroy()
            return a
        self.assertEqual(run(main()), "first")

    def test_no_thread_per_waiter(self):
        async def main():
            ch = swarm.ObjectChannel(4)
            before = threading.active_count()
            waiters = [asyncio.create_task(ch.recv_async()) for _ in range(200)]
            await asyncio.sleep(0.05)
            during = threading.active_count()
            for i in range(200):
                await ch.send_async(i)
            got = await asyncio.gather(*waiters)
            ch.destroy()
            return before, during, sorted(got)
        before, during, got = run(main())
        self.assertEqual(during, before)
        self.assertEqual(got, list(range(200)))


class TestAsyncPool(unittest.TestCase):
    def test_submit_async(self):
        async def main():
            eng = swarm.Engine.from_python(lambda r: r.payload.upper())
            with swarm.Pool(eng, workers=2, queue_capacity=4) as pool:
                res = await asyncio.gather(*[pool.submit_async(b"x%d" % i) for i in range(50)])
            eng.close()
            return [r.output for r in res]
        self.assertEqual(run(main()), [b"X%d" % i for i in range(50)])

    def test_cancel_awaiting_submit_cancels_queued_task(self):
        gate = threading.Event()
        ran = []

        def infer(req):
            ran.append(req.payload)
            gate.wait(10)
            return b"ok"

        async def main():
            eng = swarm.Engine.from_python(infer)
            with swarm.Pool(eng, workers=1) as pool:
                first = asyncio.create_task(pool.submit_async(b"first"))
                await asyncio.sleep(0.05)
                second = asyncio.create_task(pool.submit_async(b"second"))
                await asyncio.sleep(0.05)
                second.cancel()
                with self.assertRaises(asyncio.CancelledError):
                    await second
                gate.set()
                out = (await first).output
                pool.stop()
            eng.close()
            return out
        self.assertEqual(run(main()), b"ok")
        self.assertEqual(ran, [b"first"])

    def test_async_failure_raises_original(self):
        def infer(req):
            raise LookupError("nope")

        async def main():
            eng = swarm.Engine.from_python(infer, log_level=None)
            with swarm.Pool(eng, workers=1) as pool:
                with self.assertRaises(LookupError):
                    await pool.submit_async(b"")
            eng.close()
        run(main())


if __name__ == "__main__":
    unittest.main()
