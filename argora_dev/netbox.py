"""A real NetBox (PostgreSQL 15, Redis, gunicorn, rqworker) on loopback for the integration tests.

`hack/netbox/install.sh` installs NetBox into a virtualenv outside the repository and caches a
pg_dump of a freshly migrated database: migrating takes about 5 minutes, restoring the dump about
2 seconds. Each `NetBoxServer.start()` then builds a throwaway PostgreSQL cluster, restores a dump
into it, starts Redis and gunicorn on free ports, creates the users and API tokens the tests use and
starts NetBox's background worker, which delivers webhooks. Every process goes through
`ManagedProcess`, so `stop()` (or `stop_all()` at exit) leaves nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import string
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from argora_dev import REPO_ROOT
from argora_dev.process import ManagedProcess, cache_dir, free_port, http_ok, wait_until

# Must match hack/netbox/install.sh: the virtualenv and the dump are cached under this version.
NETBOX_VERSION = "4.7.3"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
INSTALL_SCRIPT = REPO_ROOT / "hack" / "netbox" / "install.sh"

# pip install plus a 5-minute migration on a cold machine.
INSTALL_TIMEOUT = 1500.0
# gunicorn boots three workers that each import Django and NetBox; slow on 2 cores.
READY_TIMEOUT = 180.0
# NetBox's RQ queues (netbox.constants.RQ_QUEUE_HIGH, _DEFAULT, _LOW): webhooks go to `default`.
# Named on the command line, since `rqworker` without queues logs a warning before taking these.
RQ_QUEUES = ("high", "default", "low")
# What a webhook may take before the worker gives up on it (NetBox's default is 60 s). The worker runs
# one job at a time: a test's receiver that never answers must not hold up every later delivery.
WEBHOOK_TIMEOUT = 10

ADMIN_USER = "admin"
READONLY_USER = "readonly"
# Lines of the token script's output that carry its result, among whatever Django prints.
_RESULT_MARKER = "ARGORA-TOKENS:"

# Runs in one `netbox shell` (Django starts in seconds, so once for everything). Idempotent on
# users and the permission so that a dump saved from a running server (`dump_to`) can be restored
# again; the tokens are new on every start. The read-only user may view every object type, so its
# reads behave like the admin's, and its token has write_enabled=False, so every write is refused
# with 403 whatever the user's permissions.
_TOKEN_SCRIPT = """
import json
from core.models import ObjectType
from users.models import ObjectPermission, Token, User

admin, _ = User.objects.get_or_create(username={admin!r})
admin.is_superuser = True
admin.is_staff = True
admin.is_active = True
admin.set_password({password!r})
admin.save()

readonly, _ = User.objects.get_or_create(username={readonly!r})
readonly.is_superuser = False
readonly.is_staff = False
readonly.is_active = True
readonly.set_unusable_password()
readonly.save()
view_all, _ = ObjectPermission.objects.get_or_create(
    name="argora tests: view everything", defaults={{"actions": ["view"]}}
)
view_all.actions = ["view"]
view_all.save()
view_all.object_types.set(ObjectType.objects.public())
readonly.object_permissions.add(view_all)

v1 = Token(user=admin, version=1, description="argora tests v1")
v1.save()
v2 = Token(user=admin, version=2, description="argora tests v2")
v2.save()
ro = Token(user=readonly, version=2, write_enabled=False, description="argora tests read-only")
ro.save()

def bearer(token):
    return token.get_auth_header_prefix().removeprefix("Bearer ") + token.token

print({marker!r} + json.dumps({{"v1": v1.token, "v2": bearer(v2), "readonly_v2": bearer(ro)}}))
"""

# A worker that has imported NetBox spends over a second tearing the interpreter down at exit (no
# thread, no buffer to flush: only freeing objects), which made each stop take ~5 s on 2 cores. A
# booted worker has nothing to save, so it leaves at once. Workers that failed to boot keep their
# exit code, which tells the master to halt. The master also runs this hook for workers it reaps:
# the pid check keeps it from ending itself. The master (which imported NetBox too: --preload) does
# the same on a clean shutdown, read from Arbiter.halt's `exit_status`; on an error exit, or should a
# gunicorn release rename that variable, it exits the slow, ordinary way.
_GUNICORN_HOOKS = """
import os
import sys


def worker_exit(server, worker):
    if os.getpid() == worker.pid and worker.booted:
        os._exit(0)


def on_exit(server):
    if sys._getframe(1).f_locals.get("exit_status") == 0:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
"""


def netbox_cache() -> Path:
    """The version-keyed folder holding the NetBox virtualenv and the migrated dump."""
    return cache_dir() / f"netbox-{NETBOX_VERSION}"


def netbox_venv() -> Path:
    return netbox_cache() / "venv"


def migrated_dump() -> Path:
    return netbox_cache() / "migrated.dump"


def _installed() -> bool:
    # install.sh writes the marker last: a virtualenv without it is half-built.
    return (
        (netbox_venv() / ".argora-complete").is_file()
        and migrated_dump().is_file()
        and (PG_BIN / "postgres").is_file()
        and shutil.which("redis-server") is not None
    )


def _secret(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _run_once(proc: ManagedProcess, timeout: float) -> None:
    """Run a short-lived command as a ManagedProcess (so a timeout or Ctrl-C ends it too) to its end."""
    proc.start()
    try:
        wait_until(lambda: proc.poll() is not None, timeout, proc.name)
        code = proc.poll()
        if code != 0:
            raise RuntimeError(f"{proc.name}: exited with {code}\n{proc.log_tail()}")
    finally:
        proc.stop()


class NetBoxServer:
    """One NetBox with its own PostgreSQL cluster and Redis; `start()`, use `url` and tokens, `stop()`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.root = workdir / "netbox"  # NETBOX_ROOT: conf/, media/, scripts/ ...
        self.logs = workdir / "logs"
        self.url = ""
        self.v1_token = ""
        self.v2_token = ""
        self.readonly_v2_token = ""
        self.admin_password = ""
        self.pg_port = 0
        self.redis_port = 0
        self.http_port = 0
        # Data directory and unix socket live in a short private folder under the system temp dir,
        # not in `workdir`: pytest's temp folders sit below a 0700 directory the postgres user
        # cannot traverse, and a unix socket path must stay under 107 bytes.
        self.pg_dir: Path | None = None
        self._postgres: ManagedProcess | None = None
        self._redis: ManagedProcess | None = None
        self._gunicorn: ManagedProcess | None = None
        self._rqworker: ManagedProcess | None = None
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ properties

    @property
    def pg_data(self) -> Path:
        assert self.pg_dir is not None, "NetBoxServer was not started"
        return self.pg_dir / "data"

    @property
    def pg_socket_dir(self) -> Path:
        assert self.pg_dir is not None, "NetBoxServer was not started"
        return self.pg_dir / "sock"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def api_headers(self, token: str | None = None) -> dict[str, str]:
        """Authorization (and JSON) headers for `token`, the admin's v2 token by default.

        v2 tokens ('nbt_<key>.<secret>') go as 'Bearer', 40-character v1 secrets as 'Token'."""
        token = token if token is not None else self.v2_token
        scheme = "Bearer" if token.startswith("nbt_") else "Token"
        return {
            "Authorization": f"{scheme} {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }

    # ------------------------------------------------------------------ lifecycle

    def start(self, dump: Path | None = None) -> None:
        """Start everything from `dump` (the cached migrated database by default) and create tokens.

        Installs first when the virtualenv, the migrated dump or the servers are missing (minutes).
        Seconds spent per step end up in `timings`."""
        assert self._postgres is None, "NetBoxServer already started"
        t_start = time.monotonic()
        if dump is not None and not dump.is_file():
            raise FileNotFoundError(f"no NetBox database dump at {dump}")
        if not _installed():
            self._install()
        dump = dump or migrated_dump()

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        # stop_all() at exit ends the processes but knows nothing of the data directory: stop()
        # does both. Registered after process.py's hook, so it runs first (atexit is LIFO).
        atexit.register(self.stop)
        try:
            t0 = time.monotonic()
            self._start_redis()
            self._start_postgres()
            self.timings["postgres"] = time.monotonic() - t0
            t0 = time.monotonic()
            self._restore(dump)
            self.timings["restore"] = time.monotonic() - t0
            t0 = time.monotonic()
            self._write_configuration()
            # The token script and the gunicorn workers both spend seconds importing Django: overlap them.
            self._start_gunicorn()
            self._create_tokens()
            self.timings["tokens"] = time.monotonic() - t0
            status = f"{self.url}/api/status/"
            wait_until(
                lambda: http_ok(status, self.api_headers()), READY_TIMEOUT, "NetBox /api/status/", self._gunicorn
            )
            self.timings["gunicorn_ready"] = time.monotonic() - t0
            # Started last so it does not slow gunicorn's boot, and not waited for: it needs ~6 s to
            # import NetBox and register, and until then RQ keeps the jobs (webhooks) in Redis.
            self._start_rqworker()
        except BaseException:
            self.stop()
            raise
        self.timings["start_total"] = time.monotonic() - t_start

    def stop(self) -> None:
        """Stop the worker, gunicorn, Redis and PostgreSQL (clients first) and remove the database files."""
        atexit.unregister(self.stop)
        t0 = time.monotonic()
        for proc in (self._rqworker, self._gunicorn, self._redis, self._postgres):
            if proc is not None:
                proc.stop(timeout=30)
        self._rqworker = self._gunicorn = self._redis = self._postgres = None
        if self.pg_dir is not None:
            shutil.rmtree(self.pg_dir, ignore_errors=True)
            self.pg_dir = None
        self.timings["stop"] = time.monotonic() - t0

    @contextlib.contextmanager
    def database_stopped(self) -> Iterator[None]:
        """PostgreSQL is down inside the block (NetBox answers 500) and back, same port and data, after.

        Leaves once NetBox answers /api/status/ again, so what follows sees a working server."""
        assert self._postgres is not None, "NetBoxServer was not started"
        self._postgres.stop(timeout=30)
        self._postgres = None
        try:
            yield
        finally:
            self._run_postgres()
            status = f"{self.url}/api/status/"
            wait_until(lambda: http_ok(status, self.api_headers()), 60, "NetBox after restarting PostgreSQL")

    def __enter__(self) -> NetBoxServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ dumps and commands

    def dump_to(self, path: Path) -> None:
        """pg_dump -Fc the running database to `path` (atomically), e.g. to cache a seeded data set."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.partial.{os.getpid()}")
        argv = [str(PG_BIN / "pg_dump"), *self._pg_client_args(), "-Fc", "-f", str(partial), "netbox"]
        try:
            _run_once(ManagedProcess("pg_dump", argv, self.logs / "pg_dump.log"), timeout=600)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)

    def netbox_command(self, *args: str, timeout: float = 600, log_name: str = "netbox-command") -> str:
        """Run `netbox <args>` (a Django management command) against this instance; return its output."""
        log = self.logs / f"{log_name}.log"
        log.unlink(missing_ok=True)
        proc = ManagedProcess(
            log_name, [str(netbox_venv() / "bin" / "netbox"), *args], log, env=self._netbox_env(), cwd=self.workdir
        )
        _run_once(proc, timeout)
        return log.read_text(errors="replace")

    # ------------------------------------------------------------------ steps

    def _install(self) -> None:
        proc = ManagedProcess("netbox-install", ["bash", str(INSTALL_SCRIPT)], self.logs / "install.log")
        _run_once(proc, INSTALL_TIMEOUT)

    def _start_redis(self) -> None:
        self.redis_port = free_port()
        redis_dir = self.workdir / "redis"
        redis_dir.mkdir(exist_ok=True)
        # No persistence: the data is a cache and a task queue that die with the test run.
        argv = [
            "redis-server",
            "--bind", "127.0.0.1",
            "--port", str(self.redis_port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(redis_dir),
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip
        self._redis = ManagedProcess("redis", argv, self.logs / "redis.log").start()

    def _start_postgres(self) -> None:
        self.pg_dir = Path(tempfile.mkdtemp(prefix="argora-pg-"))
        # PostgreSQL refuses to run as root: everything below is owned by and runs as `postgres`.
        shutil.chown(self.pg_dir, "postgres", "postgres")
        self.pg_socket_dir.mkdir()
        shutil.chown(self.pg_socket_dir, "postgres", "postgres")
        initdb = ManagedProcess(
            "initdb",
            [str(PG_BIN / "initdb"), "-D", str(self.pg_data), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"],
            self.logs / "initdb.log",
            cwd=self.pg_dir,
            user="postgres",
        )  # fmt: skip
        _run_once(initdb, timeout=120)
        self.pg_port = free_port()
        self._run_postgres()

    def _run_postgres(self) -> None:
        # `postgres` itself in the foreground (not pg_ctl, which daemonizes) so ManagedProcess tracks it.
        # Durability is worthless for a throwaway database; fsync would slow every test write.
        argv = [
            str(PG_BIN / "postgres"),
            "-D", str(self.pg_data),
            "-p", str(self.pg_port),
            "-k", str(self.pg_socket_dir),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=200",
        ]  # fmt: skip
        self._postgres = ManagedProcess(
            "postgres",
            argv,
            self.logs / "postgres.log",
            cwd=self.pg_dir,
            user="postgres",
            # SIGINT to the postmaster alone is `pg_ctl stop -m fast`: it ends its children in order.
            stop_signal=signal.SIGINT,
            signal_group=False,
        ).start()
        wait_until(self._postgres_ready, 60, "postgres", self._postgres)

    def _postgres_ready(self) -> bool:
        # The postmaster writes "ready" as the last line of postmaster.pid once it accepts connections.
        lines = (self.pg_data / "postmaster.pid").read_text().splitlines()
        return len(lines) >= 8 and lines[7].strip() == "ready"

    def _pg_client_args(self) -> list[str]:
        return ["-h", str(self.pg_socket_dir), "-p", str(self.pg_port), "-U", "postgres"]

    def _restore(self, dump: Path) -> None:
        # -C creates the database named in the dump ("netbox") while connected to "postgres".
        argv = [
            str(PG_BIN / "pg_restore"), *self._pg_client_args(), "-d", "postgres",
            "-C", "--exit-on-error", "--no-owner", str(dump),
        ]  # fmt: skip
        _run_once(ManagedProcess("pg_restore", argv, self.logs / "pg_restore.log"), timeout=1800)

    def _write_configuration(self) -> None:
        conf = self.root / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        settings = {
            "ALLOWED_HOSTS": ["127.0.0.1", "localhost"],
            "DATABASES": {
                "default": {
                    "ENGINE": "django.db.backends.postgresql",
                    "NAME": "netbox",
                    "USER": "postgres",
                    "PASSWORD": "",
                    "HOST": str(self.pg_socket_dir),
                    "PORT": str(self.pg_port),
                    "CONN_MAX_AGE": 300,
                    # Ping a kept connection before reusing it: after `database_stopped()` each worker
                    # would otherwise fail one request on its dead connection.
                    "CONN_HEALTH_CHECKS": True,
                }
            },
            # Tasks and caching share the server but not the database number, as NetBox requires.
            "REDIS": {
                "tasks": {"HOST": "127.0.0.1", "PORT": self.redis_port, "DATABASE": 0, "SSL": False},
                "caching": {"HOST": "127.0.0.1", "PORT": self.redis_port, "DATABASE": 1, "SSL": False},
            },
            "SECRET_KEY": _secret(60),
            # Without a pepper NetBox cannot create v2 tokens.
            "API_TOKEN_PEPPERS": {1: _secret(64)},
            # No LOGIN_REQUIRED: it is True by default and deprecated in 4.7 (setting it only adds a
            # FutureWarning); anonymous API requests get 403.
            "MAX_PAGE_SIZE": 1000,
            # No outbound calls from a test instance (census reporting, release checks, plugin catalog).
            "ISOLATED_DEPLOYMENT": True,
            "CENSUS_REPORTING_ENABLED": False,
            # See WEBHOOK_TIMEOUT. Webhooks to loopback need no proxy setting: NetBox sends them with
            # proxies=None, which requests takes as "no proxy" whatever HTTP_PROXY the environment holds.
            "WEBHOOK_DEFAULT_TIMEOUT": WEBHOOK_TIMEOUT,
            "TIME_ZONE": "UTC",
        }
        # repr() of these plain values is Python source (and keeps the pepper id an int, unlike JSON).
        lines = ["# Written by argora_dev/netbox.py for one test run."]
        lines += [f"{key} = {value!r}" for key, value in settings.items()]
        (conf / "configuration.py").write_text("\n".join(lines) + "\n")

    def _netbox_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(DJANGO_SETTINGS_MODULE="netbox.settings", NETBOX_ROOT=str(self.root))
        # The project's venv must not leak into NetBox's interpreter.
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        return env

    def _start_gunicorn(self) -> None:
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        # No --pythonpath with the netbox package folder: NetBox's own `graphql` package would shadow
        # the real graphql-core and the workers would not boot. The timeout covers bulk POSTs of
        # hundreds of objects, which NetBox takes tens of seconds to write.
        hooks = self.workdir / "gunicorn.conf.py"
        hooks.write_text(_GUNICORN_HOOKS)
        argv = [
            str(netbox_venv() / "bin" / "gunicorn"),
            "--config", str(hooks),
            "--bind", f"127.0.0.1:{self.http_port}",
            "--workers", "3",
            # Import NetBox once in the master and fork: ready in ~6 s instead of ~12 s on 2 cores.
            # Safe here: NetBox opens its database and Redis connections lazily, in the workers.
            "--preload",
            # Else every gunicorn shares one control socket in ~/.gunicorn (gunicorn >= 26).
            "--no-control-socket",
            "--timeout", "300",
            "--graceful-timeout", "5",
            "--access-logfile", "-",
            "netbox.wsgi",
        ]  # fmt: skip
        self._gunicorn = ManagedProcess(
            "gunicorn",
            argv,
            self.logs / "gunicorn.log",
            env=self._netbox_env(),
            cwd=self.workdir,
            # SIGINT is gunicorn's quick shutdown; SIGTERM's graceful one waits seconds for idle workers.
            stop_signal=signal.SIGINT,
        ).start()

    def _start_rqworker(self) -> None:
        argv = [str(netbox_venv() / "bin" / "netbox"), "rqworker", *RQ_QUEUES]
        self._rqworker = ManagedProcess(
            "rqworker",
            argv,
            self.logs / "rqworker.log",
            env=self._netbox_env(),
            cwd=self.workdir,
            # Its state (queues, registrations) lives in the Redis that stops next, so nothing is lost
            # by killing it; a warm shutdown took ~3 s (scheduler stop, interpreter teardown). The job
            # it may be running is in a process group of its own: ManagedProcess.stop() ends it too.
            stop_signal=signal.SIGKILL,
        ).start()

    def _create_tokens(self) -> None:
        self.admin_password = _secret(24)
        script = _TOKEN_SCRIPT.format(
            admin=ADMIN_USER, readonly=READONLY_USER, password=self.admin_password, marker=_RESULT_MARKER
        )
        output = self.netbox_command("shell", "--no-imports", "-c", script, timeout=300, log_name="tokens")
        for line in output.splitlines():
            if line.startswith(_RESULT_MARKER):
                result = json.loads(line.removeprefix(_RESULT_MARKER))
                self.v1_token = str(result["v1"])
                self.v2_token = str(result["v2"])
                self.readonly_v2_token = str(result["readonly_v2"])
                return
        raise RuntimeError(f"token script printed no result:\n{output[-4000:]}")
