# SPDX-License-Identifier: MIT
"""Issue 11 (packaging): `pip install --no-build-isolation --no-index .` into a fresh venv
(with the system's site-packages, where Debian's python3-mesonpy lives), offline, then use the
installed package from a neutral directory with no SWARM_LIBRARY and no PYTHONPATH: it must
load the libswarm.so.0 bundled beside the package, report the library's version, ship
py.typed, and run a pool task. Exit 77 (meson: skipped) when the system Python has no
meson-python, venv or pip. Run by meson as the test `python packaging`.

Usage: packaging_check.py <source-root> [python-with-mesonpy]"""
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def main() -> int:
    src = os.path.abspath(sys.argv[1])
    py = sys.argv[2] if len(sys.argv) > 2 else "/usr/bin/python3"
    probe = subprocess.run([py, "-c", "import mesonpy, venv, pip"], capture_output=True)
    if probe.returncode != 0:
        print(f"{py} lacks meson-python, venv or pip: skipped")
        return SKIP
    with tempfile.TemporaryDirectory(prefix="libswarm-pkg-") as tmp:
        tree = os.path.join(tmp, "src")
        shutil.copytree(src, tree, ignore=shutil.ignore_patterns(
            "build*", ".git", "node_modules", "__pycache__", ".mesonpy*"))
        venv = os.path.join(tmp, "venv")
        subprocess.run([py, "-m", "venv", "--system-site-packages", venv], check=True)
        vpy = os.path.join(venv, "bin", "python")
        env = {k: v for k, v in os.environ.items()
               if k not in ("SWARM_LIBRARY", "PYTHONPATH", "PIP_INDEX_URL")}
        env["PIP_NO_INDEX"] = "1"            # offline: nothing may be downloaded
        r = subprocess.run([vpy, "-m", "pip", "install", "--no-build-isolation", "--no-index",
                            "--no-cache-dir", tree], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout[-4000:], r.stderr[-4000:])
            return 1
        check = r"""
import os, sys, libswarm as swarm
pkg = os.path.dirname(swarm.__file__)
assert pkg.startswith(sys.prefix), pkg
lib = swarm.library_path()
assert os.path.dirname(lib) == pkg, (lib, pkg)
assert os.path.exists(os.path.join(pkg, "py.typed"))
v = swarm.version_info()
assert swarm.__version__ == "%d.%d.%d" % v, (swarm.__version__, v)
eng = swarm.Engine.from_python(lambda r: r.payload[::-1])
with swarm.Pool(eng, workers=2) as pool:
    assert pool.submit(b"abc").result(30).output == b"cba"
eng.close()
print("installed", swarm.__version__, "from", lib)
"""
        r = subprocess.run([vpy, "-c", check], env=env, cwd=tmp, capture_output=True,
                           text=True, timeout=120)
        print(r.stdout, r.stderr[-4000:])
        return r.returncode


if __name__ == "__main__":
    sys.exit(main())
