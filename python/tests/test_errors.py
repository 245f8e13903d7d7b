# SPDX-License-Identifier: MIT
"""The Python error table equals the C one; every code maps to its class."""
import pickle
import unittest

import libswarm as swarm
from libswarm import errors


class TestErrorTable(unittest.TestCase):
    def test_errors_python_table_equals_c_table(self):
        for code, cls in errors.ERROR_TABLE.items():
            with self.subTest(code=code):
                self.assertEqual(errors.err_name(code), cls.name)
                self.assertEqual(errors.strerror(code), cls.message)
                self.assertEqual(cls.code, code)

    def test_errors_c_has_no_code_python_lacks(self):
        # The C table is SWARM_ERR_MAP; any code it names must be in the Python table.
        for code in range(-1, -1000, -1):
            name = errors.err_name(code)
            if name != "SWARM_EUNKNOWN":
                self.assertIn(code, errors.ERROR_TABLE, f"C knows {name} ({code})")
            else:
                self.assertEqual(errors.strerror(code), "unknown error")

    def test_errors_success_and_counts(self):
        for v in (0, 1, 17):
            self.assertEqual(errors.err_name(v), "SWARM_OK")
            self.assertEqual(errors.strerror(v), "success")
            self.assertEqual(errors.check(v), v)

    def test_errors_each_code_raises_its_class(self):
        for code, cls in errors.ERROR_TABLE.items():
            with self.subTest(code=code):
                with self.assertRaises(cls) as cm:
                    errors.raise_for(code, "detail")
                self.assertIsInstance(cm.exception, swarm.SwarmError)
                self.assertEqual(cm.exception.code, code)
                self.assertIn("detail", str(cm.exception))
                self.assertIs(getattr(errors, cls.name), cls)   # C-name alias
                self.assertIs(getattr(swarm, cls.__name__), cls)
                e2 = pickle.loads(pickle.dumps(cm.exception))
                self.assertIs(type(e2), cls)
                self.assertEqual(e2.code, code)

    def test_errors_unknown_code(self):
        with self.assertRaises(swarm.SwarmError) as cm:
            errors.check(-500)
        self.assertEqual(cm.exception.code, -500)
        self.assertIs(errors.error_class(-500), swarm.SwarmError)

    def test_errors_builtin_bases(self):
        self.assertTrue(issubclass(swarm.TimedOut, TimeoutError))
        self.assertTrue(issubclass(swarm.InvalidArgument, ValueError))
        self.assertTrue(issubclass(swarm.WouldBlock, BlockingIOError))
        self.assertTrue(issubclass(swarm.OutOfMemory, MemoryError))
        self.assertTrue(issubclass(swarm.NotSupported, NotImplementedError))
        self.assertTrue(issubclass(swarm.HandleClosed, swarm.InvalidArgument))

    def test_errors_errcheck_hook(self):
        self.assertEqual(errors.errcheck(3, None, ()), 3)
        with self.assertRaises(swarm.Closed):
            errors.errcheck(-5, None, ())


class TestVersionAndLoader(unittest.TestCase):
    def test_version_major_matches(self):
        major, minor, patch = swarm.version_info()
        self.assertEqual(major, swarm.EXPECTED_MAJOR)
        self.assertEqual(swarm.version_string(), f"{major}.{minor}.{patch}")
        self.assertEqual(swarm.version(), (major << 16) | (minor << 8) | patch)

    def test_now_ns_monotonic(self):
        a = swarm.now_ns()
        b = swarm.now_ns()
        self.assertGreater(a, 0)
        self.assertGreaterEqual(b, a)

    def test_loader_env_override_missing_file_fails(self):
        import os
        import subprocess
        import sys
        env = dict(os.environ, SWARM_LIBRARY="/nonexistent/libswarm.so.0")
        r = subprocess.run([sys.executable, "-c", "import libswarm"], env=env,
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)

    def test_loader_rejects_non_swarm_library(self):
        import os
        import subprocess
        import sys
        import ctypes.util
        libm = ctypes.util.find_library("m")
        env = dict(os.environ, SWARM_LIBRARY=libm)
        r = subprocess.run([sys.executable, "-c", "import libswarm"], env=env,
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not libswarm", r.stderr)

    def test_loader_uses_env_path(self):
        import os
        if "SWARM_LIBRARY" in os.environ:
            self.assertEqual(os.path.realpath(swarm.library_path()),
                             os.path.realpath(os.environ["SWARM_LIBRARY"]))
        self.assertTrue(swarm.has_symbol("swarm_chan_create"))
        self.assertFalse(swarm.has_symbol("swarm_no_such_symbol"))


if __name__ == "__main__":
    unittest.main()
