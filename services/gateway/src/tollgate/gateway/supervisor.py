"""Runs `workers` gateway processes on one port: every core serves requests.

Each worker is a whole gateway (`python -m tollgate.gateway` with `worker_slot` set):
it replays the state itself, publishes its own events with its own spool and journal
(`<spool_dir>/worker-<slot>`, locked), and binds the public port with `SO_REUSEPORT`,
so the kernel spreads new connections over the workers. One worker per generation
also binds the operational listener (with `SO_REUSEPORT` too, so the next
generation's can bind while the old one drains); its `/metrics` are that worker's.

The supervisor holds no socket and serves nothing; it never touches the request path.

- a worker that dies is started again in the same slot (its successor recovers the
  slot's journal and drains its spool); the others keep serving meanwhile;
- a spool no running worker holds (an older generation's, left by a reload while the
  broker was away; a slot no longer used after `workers` was lowered) is taken over
  by a running worker within `_ADOPT_EVERY_S` (see `events.publisher`);
- SIGHUP: graceful reload. A new generation is started in free slots; once every new
  worker reports ready (state replayed, through a pipe), the old ones get SIGTERM and
  drain like a single gateway does (readiness 503, in-flight requests finish, events
  produced or spooled);
- SIGTERM/SIGINT: every worker gets SIGTERM and drains; the supervisor exits when they
  have (SIGKILL after `shutdown_grace_s` + 30 s).

Workers die with the supervisor (`PR_SET_PDEATHSIG`), so a killed supervisor leaves no
process holding the port.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

from tollgate.gateway.config import Settings

log = logging.getLogger(__name__)

_READY_TIMEOUT_S = 300.0  # a new generation that is not ready by then is given up
_RESTART_BACKOFF_S = 1.0


@dataclass
class _Worker:
    slot: int
    ops: bool
    process: subprocess.Popen[bytes]
    ready_fd: int
    ready: bool = False
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Starts, restarts, reloads and stops the worker processes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.count = settings.worker_count
        self._stop = False
        self._reload = False
        self.current: list[_Worker] = []
        self._draining: list[_Worker] = []

    # ------------------------------------------------------------------ processes

    def _spawn(self, slot: int, *, ops: bool) -> _Worker:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        prefix = "TOLLGATE_GATEWAY_"
        env = dict(os.environ)
        env.update(
            {
                prefix + "WORKERS": "1",
                prefix + "WORKER_SLOT": str(slot),
                prefix + "WORKER_READY_FD": str(write_fd),
                prefix + "RATE_LIMIT_POLICY": str(self.settings.rate_limit_policy),
                prefix + "SPOOL_DIR": str(self.settings.spool_path),
            }
        )
        if not ops:
            env[prefix + "OPS_PORT"] = "0"
        process = subprocess.Popen(
            [sys.executable, "-m", "tollgate.gateway", "serve"],
            env=env,
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        log.info("gateway worker started", extra={"slot": slot, "pid": process.pid})
        return _Worker(slot, ops, process, read_fd)

    def _start_generation(self) -> list[_Worker]:
        workers: list[_Worker] = []
        for index in range(self.count):
            slot = self._free_slot_excluding(workers)
            workers.append(self._spawn(slot, ops=index == 0))
        return workers

    def _free_slot_excluding(self, extra: list[_Worker]) -> int:
        used = {w.slot for w in (*self.current, *self._draining, *extra)}
        slot = 0
        while slot in used:
            slot += 1
        return slot

    @staticmethod
    def _poll_ready(worker: _Worker) -> None:
        if worker.ready:
            return
        with contextlib.suppress(BlockingIOError):
            if os.read(worker.ready_fd, 16):
                worker.ready = True

    @staticmethod
    def _close(worker: _Worker) -> None:
        with contextlib.suppress(OSError):
            os.close(worker.ready_fd)

    def _signal(self, workers: list[_Worker], sig: signal.Signals) -> None:
        for worker in workers:
            if worker.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(sig)

    # ------------------------------------------------------------------ loop

    def _on_stop(self, _sig: int, _frame: FrameType | None) -> None:
        self._stop = True

    def _on_reload(self, _sig: int, _frame: FrameType | None) -> None:
        self._reload = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        log.info("gateway supervisor starting workers", extra={"workers": self.count})
        self.current = self._start_generation()
        incoming: list[_Worker] = []
        while not self._stop:
            time.sleep(0.05)
            for worker in self.current:
                self._poll_ready(worker)
            self._restart_dead(self.current)
            if self._reload and not incoming:
                self._reload = False
                log.info("gateway reload: starting a new generation")
                incoming = self._start_generation()
            if incoming:
                for worker in incoming:
                    self._poll_ready(worker)
                self._restart_dead(incoming)
                if all(w.ready for w in incoming):
                    log.info("gateway reload: new generation ready; draining the old one")
                    self._signal(self.current, signal.SIGTERM)
                    self._draining.extend(self.current)
                    self.current, incoming = incoming, []
                elif any(time.monotonic() - w.started > _READY_TIMEOUT_S for w in incoming):
                    log.error("gateway reload: new generation not ready in time; kept the old")
                    self._signal(incoming, signal.SIGTERM)
                    self._draining.extend(incoming)
                    incoming = []
            self._reap_draining()
        return self._shutdown([*self.current, *incoming])

    def _restart_dead(self, workers: list[_Worker]) -> None:
        for index, worker in enumerate(workers):
            code = worker.process.poll()
            if code is None or self._stop:
                continue
            log.error(
                "gateway worker exited; starting it again",
                extra={"slot": worker.slot, "pid": worker.process.pid, "code": code},
            )
            self._close(worker)
            if time.monotonic() - worker.started < _RESTART_BACKOFF_S:
                time.sleep(_RESTART_BACKOFF_S)  # a worker failing at start must not spin
            workers[index] = self._spawn(worker.slot, ops=worker.ops)

    def _reap_draining(self) -> None:
        for worker in list(self._draining):
            if worker.process.poll() is not None:
                self._close(worker)
                self._draining.remove(worker)

    def _shutdown(self, workers: list[_Worker]) -> int:
        everyone = [*workers, *self._draining]
        log.info("gateway supervisor stopping workers", extra={"workers": len(everyone)})
        self._signal(everyone, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace_s + 30.0
        for worker in everyone:
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("gateway worker did not stop; killed", extra={"slot": worker.slot})
                worker.process.kill()
                worker.process.wait()
            self._close(worker)
        return 0


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent (the supervisor) dies."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl
            os.kill(os.getpid(), signal.SIGTERM)
