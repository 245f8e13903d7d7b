#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Submit n no-op tasks to a libswarm.Pool (or a ThreadPoolExecutor) and wait for all: the
workload for an instruction count per task, a figure the machine's load does not move as much
as wall time. Run it under callgrind for two sizes and take the difference, so start-up cancels:

    PY=$(python3 -c 'import sys; print(sys.executable)')   # the real binary, not a pyenv shim
    for k in pool tpe; do for n in 2000 6000; do
      SWARM_LIBRARY=build/libswarm.so.0 PYTHONPATH=python valgrind --tool=callgrind \\
        --callgrind-out-file=/tmp/cg.$k.$n $PY benchmarks/python_pool_ir.py $k $n 4 2>&1 | grep Collected
    done; done
    # instructions per task = (Collected at 6000 - Collected at 2000) / 4000

Usage: python_pool_ir.py pool|tpe N WORKERS
"""
import concurrent.futures as cf
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import libswarm as swarm  # noqa: E402


def main() -> int:
    kind, n, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if kind == "pool":
        eng = swarm.Engine.from_python(lambda r: None)
        with swarm.Pool(eng, workers=w, max_workers=max(w, 1),
                        queue_capacity=max(1024, n)) as pool:
            pool.submit(b"").result(30)
            cf.wait([pool.submit(b"") for _ in range(n)])
        eng.close()
    elif kind == "tpe":
        with cf.ThreadPoolExecutor(w) as ex:
            list(ex.map(lambda _: None, range(w * 2)))
            cf.wait([ex.submit(lambda: None) for _ in range(n)])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
