"""What the gateway benches share: Debian tools, nginx, wrk, npm, CPU accounting.

Loopback only. A tool the bench needs and the machine lacks (wrk, nginx) is installed
with apt-get, printing the command first; the Fastify peer is installed with `npm ci`
into the run's temp dir from the pinned lock file beside this module. Nothing here
is imported by the gateway.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from tollgate.kit import localdeps
from tollgate.kit.localdeps import LocalProcess

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXED_BODY = '{"message":"hello from nginx"}'


def debian_tool(command: str, package: str) -> str:
    """The path of `command`, installing Debian's `package` with apt-get when missing."""
    found = shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
    ):
        print(f"{command} is missing; running: {' '.join(argv)}", flush=True)
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    found = shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin")
    if not found:
        sys.exit(f"{package} installed but {command} is still not on PATH")
    if command == "nginx":
        _stop_packaged_nginx(found)
    return found


def _stop_packaged_nginx(nginx: str) -> None:
    # Debian's postinst may start the packaged service (port 80); the bench only
    # wants the binary, so stop what the install just started.
    pid_file = Path("/run/nginx.pid")
    if pid_file.exists():
        print("stopping the nginx service the package install started (nginx -s quit)")
        subprocess.run([nginx, "-s", "quit"], check=False)


def node_tool() -> tuple[str, str]:
    """node (>= 20, for Fastify 5) and npm."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        debian_tool("node", "nodejs")
        debian_tool("npm", "npm")
        node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        sys.exit("node/npm still missing after apt-get install nodejs npm")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    if int(version.strip().lstrip("v").split(".")[0]) < 20:
        sys.exit(f"node {version.strip()} is too old for Fastify 5 (needs >= 20)")
    return node, npm


def install_fastify(workdir: Path) -> Path:
    """`npm ci` the pinned Fastify peer into `workdir/fastify`; returns its gateway.js."""
    _, npm = node_tool()
    target = workdir / "fastify"
    target.mkdir(parents=True)
    for name in ("package.json", "package-lock.json", "gateway.js"):
        shutil.copy(HERE / "fastify" / name, target / name)
    argv = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    print(f"installing the Fastify peer: (cd {target} && {' '.join(argv[1:])})", flush=True)
    subprocess.run(argv, cwd=target, check=True, stdout=subprocess.DEVNULL)
    return target / "gateway.js"


# --------------------------------------------------------------------------- nginx


def start_nginx(
    name: str, workdir: Path, port: int, cpus: str, http_block: str, *, workers: int = 1
) -> LocalProcess:
    """An nginx of our own (prefix in `workdir/name`, no access log), pinned to `cpus`."""
    nginx = debian_tool("nginx", "nginx")
    prefix = workdir / name
    prefix.mkdir(parents=True, exist_ok=True)
    temps = "\n".join(
        f"  {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""worker_processes {workers};
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
{temps}
{http_block}
}}
"""
    )
    argv = ["taskset", "-c", cpus, nginx, "-p", str(prefix), "-e", str(prefix / "error.log")]
    argv += ["-c", str(conf), "-g", "daemon off;"]
    return localdeps.start_program(name, argv, workdir, port=port)


def upstream_block(port: int) -> str:
    """nginx as the upstream: one small fixed JSON answer for every method and path."""
    return f"""  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    default_type application/json;
    location / {{ return 200 '{FIXED_BODY}'; }}
  }}"""


def proxy_block(port: int, upstream_port: int, keys_map: Path) -> str:
    """nginx as the gateway: raw key -> org map (10k keys), org credits map, per-key
    limit_req, keep-alive proxy to the upstream with the key stripped."""
    return f"""  map_hash_max_size 65536;
  map_hash_bucket_size 128;
  map $http_x_api_key $tg_org {{ default ""; include {keys_map}; }}
  map $tg_org $tg_blocked {{ default 0; "org-blocked" 1; }}
  limit_req_zone $http_x_api_key zone=perkey:32m rate=100000r/s;
  upstream tg_upstream {{ server 127.0.0.1:{upstream_port}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location /api/ {{
      if ($tg_org = "") {{ return 401; }}
      if ($tg_blocked) {{ return 402; }}
      limit_req zone=perkey burst=100000 nodelay;
      proxy_pass http://tg_upstream/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-API-Key "";
    }}
  }}"""


def pin_threads(pid: int, cpus: str) -> None:
    """Move every thread of a running process (e.g. the broker) onto `cpus`."""
    subprocess.run(
        ["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, stdout=subprocess.DEVNULL
    )


# --------------------------------------------------------------------------- CPU


def process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    """user + system CPU of `pid` and its live descendants (from /proc, via psutil)."""
    total = 0.0
    for proc in process_tree(pid):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class CpuMeter:
    """CPU% of a process tree between `start()` and `stop()` (100 = one core busy)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self._cpu = 0.0
        self._wall = 0.0

    def start(self) -> None:
        self._wall = time.monotonic()
        self._cpu = cpu_seconds(self.pid) if self.pid else 0.0

    def stop(self) -> float | None:
        if not self.pid:
            return None
        return 100 * (cpu_seconds(self.pid) - self._cpu) / (time.monotonic() - self._wall)


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    errors: int
    cpu: float | None = None

    @property
    def cpu_us_per_request(self) -> float | None:
        """CPU time per answered request, in µs."""
        return self.cpu * 10_000 / self.rps if self.cpu and self.rps else None

    @property
    def per_core(self) -> float | None:
        """req/s this process would answer with a whole core (req/s / CPU share)."""
        return self.rps * 100 / self.cpu if self.cpu and self.rps else None


WRK_LUA = """
local keys = {}
for line in io.lines("%s") do keys[#keys + 1] = line end
local n = 0
wrk.method = "%s"
%s
request = function()
  n = n + 1
  return wrk.format(nil, nil, {["X-API-Key"] = keys[(n %% #keys) + 1]%s})
end
"""


def wrk_script(
    workdir: Path,
    keys_file: Path,
    method: str,
    body_bytes: int = 0,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    name: str | None = None,
) -> Path:
    """A wrk Lua script rotating over every key: with `body_bytes` of filler (as
    `application/octet-stream`) when > 0, or with `body` and `headers` as given."""
    if body_bytes:
        lua_body = f'wrk.body = string.rep("x", {body_bytes})'
        headers = {"Content-Type": "application/octet-stream", **(headers or {})}
    else:
        lua_body = "wrk.body = [[" + body.decode() + "]]" if body else ""
    extra = "".join(f', ["{k}"] = "{v}"' for k, v in (headers or {}).items())
    path = workdir / f"{name or f'{method.lower()}-{body_bytes}'}.lua"
    path.write_text(WRK_LUA % (keys_file, method, lua_body, extra))
    return path


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(
    url: str,
    script: Path | None,
    seconds: int,
    connections: int,
    *,
    cpus: str,
    measure_pid: int | None = None,
) -> WrkResult:
    """Saturate `url` with wrk (1 thread, pinned to `cpus`); CPU% of `measure_pid`."""
    argv = ["taskset", "-c", cpus, debian_tool("wrk", "wrk"), "-t1", f"-c{connections}"]
    argv += [f"-d{seconds}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    meter = CpuMeter(measure_pid)
    meter.start()
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    cpu = meter.stop()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        rps=rps,
        p50_ms=p50,
        p99_ms=p99,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        errors=sum(int(g) for g in errors.groups()) if errors else 0,
        cpu=cpu,
    )
