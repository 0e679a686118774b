"""`python -m tollgate.gateway [serve]`: run the gateway until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvloop

from tollgate.gateway.app import serve
from tollgate.gateway.config import Settings
from tollgate.kit.cli import freeze_startup_heap
from tollgate.kit.logs import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tollgate.gateway")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"])
    parser.parse_args(argv)
    settings = Settings()
    configure_logging("gateway", settings.log_level, json=settings.log_json)
    freeze_startup_heap()
    uvloop.run(serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
