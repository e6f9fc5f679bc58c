"""Child processes for the test harness: started in their own process group, always stopped.

Every server the suite starts (etcd, kube-apiserver, PostgreSQL, Redis, NetBox, the operators) goes
through `ManagedProcess`, so one registry knows them all and `stop_all()` ends every one of them,
after a failure, on Ctrl-C and at interpreter exit alike: a test run never leaves strays behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

_RUNNING: list[ManagedProcess] = []


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cache_dir() -> Path:
    """Where built tools and database dumps are kept between runs (outside the repository)."""
    root = Path(os.environ.get("ARGORA_CACHE", Path.home() / ".cache" / "argora"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def wait_until(check: Callable[[], bool], timeout: float, what: str, proc: ManagedProcess | None = None) -> None:
    """Poll `check` until it is true; fail with the process's log tail when it dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.poll()}\n{proc.log_tail()}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    tail = proc.log_tail() if proc is not None else ""
    raise TimeoutError(f"{what}: not ready after {timeout:.0f}s\n{tail}")


def http_ok(url: str, headers: Mapping[str, str] | None = None) -> bool:
    """True when `url` answers 2xx (TLS verification off: the test servers use self-signed certificates)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=5, context=ctx) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


class ManagedProcess:
    """One server process with its log file; registered so that `stop_all()` can end it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        signal_group: bool = True,
    ) -> None:
        """`stop_signal`/`signal_group`: how `stop()` asks for a clean exit. Most servers take SIGTERM
        to their whole group; the PostgreSQL postmaster wants SIGINT ("fast" shutdown) to itself
        alone, since it shuts its own children down in order."""
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self.stop_signal = stop_signal
        self.signal_group = signal_group
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        # `user=` alone only changes the uid: the child would keep root's group and supplementary
        # groups. Take the user's own primary group and nothing else, as `runuser` would.
        group = pwd.getpwnam(self.user).pw_gid if self.user is not None else None
        extra_groups: list[int] | None = [] if self.user is not None else None
        self._popen = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            user=self.user,
            group=group,
            extra_groups=extra_groups,
            start_new_session=True,
        )
        _RUNNING.append(self)
        return self

    @property
    def pid(self) -> int:
        assert self._popen is not None, f"{self.name} was not started"
        return self._popen.pid

    def poll(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10) -> None:
        """Send the stop signal (SIGTERM to the whole group by default), SIGKILL what is still there
        after `timeout` and whatever else the process left in its session."""
        if self._popen is not None and self._popen.poll() is None:
            if self.signal_group:
                _signal_group(self._popen.pid, self.stop_signal)
            else:
                self._popen.send_signal(self.stop_signal)
            try:
                self._popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self._popen.pid, signal.SIGKILL)
                self._popen.wait(timeout=timeout)
        if self._popen is not None:
            # Workers forked by the process (gunicorn's, for one) share its group: end them too.
            _signal_group(self._popen.pid, signal.SIGKILL)
            # Children that made a process group of their own (rq's work horses call setpgrp) are out
            # of the group's reach but still in the session `start()` opened.
            for pid in _session_members(self._popen.pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self in _RUNNING:
            _RUNNING.remove(self)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _session_members(sid: int) -> list[int]:
    """The processes of session `sid`, read from /proc."""
    members: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
            # What follows starts with state, ppid, pgrp, session.
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process is gone
            continue
        if int(fields[3]) == sid:
            members.append(int(stat.parent.name))
    return members


def stop_all() -> None:
    """Stop every process still running, newest first (the operators before their servers)."""
    for proc in reversed(list(_RUNNING)):
        proc.stop()


def _stop_on_signal(signum: int, _frame: object) -> None:
    stop_all()
    raise SystemExit(128 + signum)


atexit.register(stop_all)
signal.signal(signal.SIGTERM, _stop_on_signal)
