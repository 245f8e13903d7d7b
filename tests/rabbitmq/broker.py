# SPDX-License-Identifier: MIT
"""A private RabbitMQ broker for one test run, and helpers to drive the example programs.

The broker runs on 127.0.0.1 with its own node name, AMQP port, Erlang distribution port and
Erlang port mapper (epmd) port, so neither a system broker (the Debian package's postinst may
start one on 5672 with epmd on 4369) nor another test run interferes. Its data and logs live in
a fresh temporary folder. As root, the Debian wrapper (/usr/sbin/rabbitmq-server) drops
privileges to the rabbitmq user, so that folder belongs to rabbitmq; as any other user the
server script runs directly under that user with a private HOME (and Erlang cookie).

Everything started here is stopped in Broker.close(), bounded in time, also when a test fails
or the runner sends SIGTERM: rabbitmqctl stop, then SIGKILL to the server's process group, then
our own epmd by its PID.
"""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
SERVER_LIB = "/usr/lib/rabbitmq/bin"


def log(*a):
    print("[rabbitmq-test]", *a, flush=True)


def find_server():
    """Paths of (rabbitmq-server, rabbitmqctl) to use, or None when the package is absent."""
    if os.geteuid() == 0:
        srv = shutil.which("rabbitmq-server", path="/usr/sbin:/usr/bin:/sbin:/bin")
        ctl = shutil.which("rabbitmqctl", path="/usr/sbin:/usr/bin:/sbin:/bin")
    else:  # the /usr/sbin wrappers refuse other users; the scripts themselves do not
        srv = shutil.which("rabbitmq-server", path=SERVER_LIB)
        ctl = shutil.which("rabbitmqctl", path=SERVER_LIB)
    epmd = shutil.which("epmd", path="/usr/bin:/usr/lib/erlang/bin")
    if not srv or not ctl or not epmd:
        return None
    return srv, ctl, epmd


def skip_if_absent():
    found = find_server()
    if not found:
        print("SKIP: rabbitmq-server is not installed (Debian package rabbitmq-server); "
              "the broker tests need it", flush=True)
        sys.exit(SKIP)
    return found


def descendants(root):
    """PIDs of every live descendant of @root, from /proc (children first found first)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


class Broker:
    def __init__(self, tag="swarmtest"):
        self.srv, self.ctl_bin, self.epmd_bin = skip_if_absent()
        self.node = "%s%d@localhost" % (tag, os.getpid())
        self.port, self.dist_port, self.epmd_port = free_ports(3)
        self.dir = tempfile.mkdtemp(prefix="swarm-rabbitmq-")
        os.chmod(self.dir, 0o755)
        for sub in ("mnesia", "log"):
            os.makedirs(os.path.join(self.dir, sub))
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[].\n")  # no management plugin: no HTTP listener on 15672 to collide
        self.env = dict(os.environ)
        self.env.update({
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq"),  # absent: defaults
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        })
        if os.geteuid() == 0:
            ent = pwd.getpwnam("rabbitmq")
            for root, dirs, files in os.walk(self.dir):
                for name in dirs + files:
                    os.chown(os.path.join(root, name), ent.pw_uid, ent.pw_gid)
            os.chown(self.dir, ent.pw_uid, ent.pw_gid)
        else:
            self.env["HOME"] = self.dir  # a private Erlang cookie
        self.proc = None
        self.tree = []
        self.epmd = None
        self.server_log = None
        self.starts = 0

    @property
    def amqp_args(self):
        return ["--host=127.0.0.1", "--port=%d" % self.port]

    def start(self, timeout=180):
        if self.epmd is None:
            # Our own port mapper on a private port; the server finds it and starts none.
            self.epmd = subprocess.Popen([self.epmd_bin, "-port", str(self.epmd_port),
                                          "-address", "127.0.0.1"], env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
        self.starts += 1
        self.server_log = open(os.path.join(self.dir, "server-%d.out" % self.starts), "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([self.srv], env=self.env, stdout=self.server_log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, cwd=self.dir)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("rabbitmq-server exited with %s during start-up:\n%s"
                                   % (self.proc.returncode, self.tail_logs()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    # A listening socket answers the AMQP header with its own protocol header
                    # (or closes): good enough to know the listener is up.
                    s.sendall(b"AMQP\x00\x00\x09\x01")
                    s.settimeout(5)
                    if s.recv(8):
                        break
            except OSError:
                pass
            if time.monotonic() - t0 > timeout:
                raise RuntimeError("rabbitmq-server did not listen on %d within %ds:\n%s"
                                   % (self.port, timeout, self.tail_logs()))
            time.sleep(0.25)
        self.tree = descendants(self.proc.pid)
        log("broker %s up on 127.0.0.1:%d in %.1fs (dist %d, epmd %d, data %s)"
            % (self.node, self.port, time.monotonic() - t0, self.dist_port, self.epmd_port,
               self.dir))

    def ctl(self, *args, timeout=60):
        r = subprocess.run([self.ctl_bin, "--node", self.node] + list(args), env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           cwd=self.dir)
        return r.returncode, r.stdout.decode(errors="replace")

    def queue_counts(self, name):
        """(ready, unacked) of queue @name, from rabbitmqctl (what KEDA's trigger reads)."""
        rc, out = self.ctl("list_queues", "-q", "--no-table-headers", "name", "messages_ready",
                           "messages_unacknowledged")
        if rc != 0:
            raise RuntimeError("rabbitmqctl list_queues failed: " + out)
        for line in out.splitlines():
            f = line.split()
            if len(f) == 3 and f[0] == name:
                return int(f[1]), int(f[2])
        return None

    def beam_pids(self):
        pids = []
        for pid in set(self.tree) | set(descendants(self.proc.pid)):
            try:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip().startswith("beam"):
                        pids.append(pid)
            except OSError:
                pass
        return pids

    def stop(self, timeout=30, mode="ctl"):
        """Stop the server, bounded in time, keeping the data folder. mode "ctl": rabbitmqctl
        stop (graceful); "term": SIGTERM to the Erlang VM (graceful, without the CLI's start-up
        time); "kill": SIGKILL to the VM (a crash). Whatever is left is then SIGKILLed."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if mode == "ctl":
                try:
                    self.ctl("stop", timeout=timeout)
                except subprocess.TimeoutExpired:
                    log("rabbitmqctl stop timed out")
            else:
                for pid in self.beam_pids():
                    os.kill(pid, signal.SIGTERM if mode == "term" else signal.SIGKILL)
            try:
                self.proc.wait(timeout=timeout if mode != "ctl" else 10)
            except subprocess.TimeoutExpired:
                pass
        # su starts the server script in a session of its own, so kill every process of the
        # tree we started (recorded at start-up, plus what is there now) by its PID.
        tree = set(self.tree) | set(descendants(self.proc.pid))
        for pid in sorted(tree) + [self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.tree = []
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log("rabbitmq-server did not exit after SIGKILL")
        self.proc = None
        if self.server_log:
            self.server_log.close()
            self.server_log = None

    def tail_logs(self, n=40):
        out = []
        for root, _, files in os.walk(self.dir):
            for name in sorted(files):
                if name.endswith(".log") or name.endswith(".out"):
                    p = os.path.join(root, name)
                    try:
                        with open(p, errors="replace") as f:
                            lines = f.readlines()[-n:]
                    except OSError:
                        continue
                    out.append("--- %s\n%s" % (p, "".join(lines)))
        return "\n".join(out)

    def close(self, failed=False):
        try:
            self.stop()
        finally:
            if self.epmd is not None:
                self.epmd.kill()
                self.epmd.wait(timeout=10)
                self.epmd = None
            if failed:
                log("broker logs:\n" + self.tail_logs())
            if os.environ.get("SWARM_KEEP_BROKER_DIR"):
                log("kept " + self.dir)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)


class Proc:
    """A child program whose stdout lines are collected by a thread."""

    def __init__(self, name, argv):
        self.name = name
        self.argv = argv
        self.lines = []
        self.out_eof = False
        self.cond = threading.Condition()
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL)
        self.err = []
        self.t = threading.Thread(target=self._read, args=(self.p.stdout, self.lines),
                                  daemon=True)
        self.t.start()
        self.te = threading.Thread(target=self._read, args=(self.p.stderr, self.err),
                                   daemon=True)
        self.te.start()

    def _read(self, stream, into):
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            with self.cond:
                into.append(line)
                self.cond.notify_all()
            if os.environ.get("SWARM_TEST_VERBOSE"):
                print("  %s| %s" % (self.name, line), flush=True)
        with self.cond:
            if into is self.lines:
                self.out_eof = True   # every stdout line the program wrote is in self.lines
            self.cond.notify_all()

    @property
    def pid(self):
        return self.p.pid

    def wait_for(self, pattern, timeout, start=0):
        """First stdout line matching @pattern (regex) at or after index @start."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    if rx.search(self.lines[i]):
                        return self.lines[i]
                    i += 1
                left = end - time.monotonic()
                # Not "the process has exited": its last lines may still be in the pipe,
                # unread by _read (that race failed a CI-like run: a worker's final counters
                # were printed but not yet collected). End of stdout is the end.
                if left <= 0 or (self.out_eof and i >= len(self.lines)):
                    return None
                self.cond.wait(min(left, 0.2))

    def last(self, pattern):
        rx = re.compile(pattern)
        with self.cond:
            for line in reversed(self.lines):
                if rx.search(line):
                    return line
        return None

    def all(self, pattern):
        rx = re.compile(pattern)
        with self.cond:
            return [l for l in self.lines if rx.search(l)]

    def wait(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig):
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(timeout=10)
        self.t.join(timeout=5)
        self.te.join(timeout=5)

    def stderr_tail(self, n=20):
        with self.cond:
            return "\n".join(self.err[-n:])


def kv(line):
    """key=value pairs of one output line, values as int/float when they parse."""
    out = {}
    for k, v in re.findall(r"(\w+)=(\S+)", line or ""):
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


def install_sigterm_cleanup():
    """Turn SIGTERM (meson's timeout) into SystemExit, so that finally blocks stop the broker."""
    def handler(sig, frame):
        raise SystemExit("terminated by signal %d" % sig)
    signal.signal(signal.SIGTERM, handler)
