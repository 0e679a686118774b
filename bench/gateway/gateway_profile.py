"""Where the gateway's CPU goes: a py-spy profile summed by component.

Records with `py-spy record --native --format speedscope` (Python and native frames of
every Python thread) and sums samples by component: a third-party package (aiohttp,
pyreqwest, aiokafka, uvloop, multidict...), a Tollgate module
(`tollgate.gateway.proxy.gate`, `tollgate.gateway.limits.local`...), a stdlib module
(`stdlib:asyncio`), or the interpreter itself. *Self* charges each sample to the
component of its innermost frame, walking out past generic frames (CPython's eval
loop and object code, libc, the kernel, PyO3 glue, inlined CPython headers) to the
first frame that names a component, so time spent in the interpreter on behalf of
`gate.py` counts for `gate.py`; *incl.* is the share of samples in which the component
appears at all; the last column is *self* over the main (event loop) thread alone.
py-spy samples only threads that have run Python, and may count a native thread
waiting in an unsymbolised libc call as busy; `thread_cpu` reads every thread's real
CPU from /proc (pyreqwest's Rust runtime threads included) to set beside it.

    .venv/bin/python bench/gateway/gateway_profile.py PROFILE.json [--top 25]
    .venv/bin/python bench/gateway/gateway_profile.py --pid PID --seconds 10 [-o out.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil

# Native code whose source path names its owner; first match wins.
NATIVE_OWNERS = (
    ("/uvloop/", "uvloop"),
    ("libuv", "uvloop"),
    ("/aiohttp/", "aiohttp"),
    ("/multidict/", "multidict"),
    ("/yarl/", "yarl"),
    ("/propcache/", "propcache"),
    ("/frozenlist/", "frozenlist"),
    ("pyreqwest", "pyreqwest"),
    ("/reqwest-", "pyreqwest"),
    ("/hyper-", "pyreqwest"),
    ("/hyper_util", "pyreqwest"),
    ("/h2-", "pyreqwest"),
    ("/http-body", "pyreqwest"),
    ("/tokio-", "pyreqwest"),
    ("/pyo3-async-runtimes", "pyreqwest"),
    ("pydantic-core", "pydantic_core"),
    ("pydantic_core", "pydantic_core"),
    ("/jiter", "pydantic_core"),
    ("_hashopenssl", "stdlib:hashlib (OpenSSL)"),
    ("openssl", "stdlib:hashlib (OpenSSL)"),
    ("/crypto/", "stdlib:hashlib (OpenSSL)"),
    ("_asynciomodule", "stdlib:asyncio"),
    ("zlibmodule", "stdlib:zlib"),
    ("_json.c", "stdlib:json"),
    ("binascii", "stdlib:binascii"),
    ("_uuid", "stdlib:uuid"),
    ("socketmodule", "stdlib:socket"),
    ("_struct.c", "stdlib:struct"),
)
SITE_PACKAGES = re.compile(r"/site-packages/([A-Za-z0-9_]+)")
TOLLGATE = re.compile(r"/src/(tollgate/[A-Za-z0-9_/]+)\.py$")
STDLIB = re.compile(r"/lib/python3\.\d+/([A-Za-z0-9_]+)")
GENERIC = "(generic)"


def component(name: str, file: str) -> str:
    """The owner of one frame, or GENERIC for interpreter/libc/glue frames."""
    if file.endswith(".py"):
        if match := TOLLGATE.search(file):
            return match.group(1).replace("/", ".")
        if match := SITE_PACKAGES.search(file):
            return match.group(1)
        if match := STDLIB.search(file):
            return f"stdlib:{match.group(1).removesuffix('.py')}"
        return Path(file).stem
    for needle, owner in NATIVE_OWNERS:
        if needle in file:
            return owner
    return GENERIC


def interpreter_kind(name: str, file: str) -> str:
    """A coarse label for generic leaf frames, for the 'where exactly' line."""
    if "Python-3" in file or "cpython" in file or "/Objects/" in file or "/Python/" in file:
        return "CPython"
    if "/pyo3" in file:
        return "PyO3"
    if "/rustc/" in file or ".cargo" in file:
        return "Rust std/crates"
    return "libc/kernel/other"


def summarise(path: Path) -> dict[str, object]:
    """Self and inclusive sample counts by component, over every sampled thread."""
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    owners = [component(f["name"], f.get("file") or "") for f in frames]
    kinds = [interpreter_kind(f["name"], f.get("file") or "") for f in frames]
    self_counts: collections.Counter[str] = collections.Counter()
    main_counts: collections.Counter[str] = collections.Counter()
    main_total = 0.0
    incl_counts: collections.Counter[str] = collections.Counter()
    generic_leaf: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0.0
    samples = 0
    threads: collections.Counter[str] = collections.Counter()
    for prof in data["profiles"]:
        # py-spy weights each sample by its interval in seconds.
        weights = prof.get("weights") or [1] * len(prof["samples"])
        samples += len(prof["samples"])
        threads[prof.get("name", "?")] += sum(weights)
        is_main = "MainThread" in prof.get("name", "")
        for stack, weight in zip(prof["samples"], weights, strict=True):
            total += weight
            if stack:
                leaf = frames[stack[-1]]
                leaves[f"{leaf['name']} ({Path(leaf.get('file') or '?').name})"] += weight
            if stack and owners[stack[-1]] == GENERIC:
                generic_leaf[kinds[stack[-1]]] += weight
            owner = next(
                (owners[i] for i in reversed(stack) if owners[i] != GENERIC), "(no Python frame)"
            )
            self_counts[owner] += weight
            if is_main:
                main_counts[owner] += weight
                main_total += weight
            for name in {owners[i] for i in stack} - {GENERIC}:
                incl_counts[name] += weight
    return {
        "total": total,
        "samples": samples,
        "threads": threads,
        "self": self_counts,
        "main": main_counts,
        "main_total": main_total,
        "incl": incl_counts,
        "generic": generic_leaf,
        "leaves": leaves,
    }


def format_summary(summary: dict[str, object], top: int = 25) -> str:
    total = float(summary["total"])  # type: ignore[arg-type]
    threads: collections.Counter[str] = summary["threads"]  # type: ignore[assignment]
    self_counts: collections.Counter[str] = summary["self"]  # type: ignore[assignment]
    incl: collections.Counter[str] = summary["incl"]  # type: ignore[assignment]
    generic: collections.Counter[str] = summary["generic"]  # type: ignore[assignment]
    if not total:
        return "no samples"
    main: collections.Counter[str] = summary["main"]  # type: ignore[assignment]
    main_total = float(summary["main_total"]) or 1.0  # type: ignore[arg-type]
    lines = [
        f"\n## Tollgate gateway profile: {summary['samples']} samples ({total:.1f} s on CPU), "
        "top components by self time\n",
        "threads sampled: "
        + ", ".join(f"{name} {100 * v / total:.0f} %" for name, v in threads.most_common())
        + "\n",
        "| component | self % | incl. % | self % of the main thread |",
        "|---|---:|---:|---:|",
    ]
    for name, count in self_counts.most_common(top):
        lines.append(
            f"| {name} | {100 * count / total:.1f} | {100 * incl[name] / total:.1f} "
            f"| {100 * main[name] / main_total:.1f} |"
        )
    leaf = ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in generic.most_common())
    lines.append(f"\ninnermost frame generic (charged to the component above it): {leaf}")
    leaves: collections.Counter[str] = summary["leaves"]  # type: ignore[assignment]
    lines += ["", "| innermost frame (function, file) | self % |", "|---|---:|"]
    for name, count in leaves.most_common(top // 2):
        lines.append(f"| {name} | {100 * count / total:.1f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- recording


def start_recording(
    pid: int, out: Path, seconds: int, *, cpus: str, subprocesses: bool = False
) -> subprocess.Popen[bytes]:
    """py-spy (from the venv), pinned to `cpus`, recording `pid` for `seconds`."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        sys.exit(
            "py-spy is missing: .venv/bin/pip install -r requirements-dev.txt -c constraints.txt"
        )
    argv = ["taskset", "-c", cpus, str(spy), "record", "--native", "--rate", "100"]
    argv += ["--format", "speedscope", "-o", str(out), "-d", str(seconds), "-p", str(pid)]
    if subprocesses:
        argv.append("--subprocesses")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def thread_cpu(pid: int) -> dict[tuple[int, int, str], float]:
    """CPU seconds of every thread of `pid` and its children, keyed (pid, tid, name)."""
    result: dict[tuple[int, int, str], float] = {}
    root = psutil.Process(pid)
    for proc in (root, *root.children(recursive=True)):
        try:
            threads = proc.threads()
        except psutil.Error:
            continue
        for thread in threads:
            try:
                name = Path(f"/proc/{proc.pid}/task/{thread.id}/comm").read_text().strip()
            except OSError:
                name = "?"
            result[(proc.pid, thread.id, name)] = thread.user_time + thread.system_time
    return result


def thread_cpu_delta(
    before: dict[tuple[int, int, str], float], after: dict[tuple[int, int, str], float]
) -> tuple[dict[str, float], float]:
    """CPU seconds used between two `thread_cpu` readings, summed by thread name."""
    by_name: collections.Counter[str] = collections.Counter()
    for key, value in after.items():
        by_name[re.sub(r"[-_ ]?\d+$", "", key[2])] += value - before.get(key, 0.0)
    return dict(by_name), sum(by_name.values())


def format_threads(delta: tuple[dict[str, float], float]) -> str:
    by_name, total = delta
    if total <= 0:
        return "threads: no CPU used"
    parts = ", ".join(
        f"{name} {100 * value / total:.0f} %"
        for name, value in sorted(by_name.items(), key=lambda kv: -kv[1])
        if value > 0.005 * total
    )
    return f"gateway CPU by thread (from /proc, py-spy samples only Python threads): {parts}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profile", nargs="?", type=Path, help="py-spy speedscope JSON")
    parser.add_argument("--pid", type=int, help="record this process first")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--cpus", default="1", help="taskset list for py-spy itself")
    parser.add_argument("-o", "--output", type=Path, default=Path("gateway.speedscope.json"))
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    path = args.profile
    if args.pid:
        before = thread_cpu(args.pid)
        start_recording(args.pid, args.output, args.seconds, cpus=args.cpus).wait()
        time.sleep(0.1)
        print(format_threads(thread_cpu_delta(before, thread_cpu(args.pid))))
        path = args.output
    if path is None:
        parser.error("give a speedscope file or --pid")
    print(format_summary(summarise(path), top=args.top))


if __name__ == "__main__":
    main()
