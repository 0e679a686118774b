"""`python -m tollgate.gateway [serve]`: run the gateway until SIGTERM/SIGINT.

With `workers` > 1 this process is the supervisor of that many gateway processes
(`supervisor`); with 1 it is the gateway itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvloop

from tollgate.gateway.app import serve
from tollgate.gateway.config import Settings
from tollgate.gateway.supervisor import Supervisor, die_with_parent
from tollgate.kit.cli import freeze_startup_heap
from tollgate.kit.logs import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tollgate.gateway")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"])
    parser.parse_args(argv)
    settings = Settings()
    configure_logging("gateway", settings.log_level, json=settings.log_json)
    if settings.worker_count > 1:
        return Supervisor(settings).run()
    if settings.worker_slot is not None:
        die_with_parent()
        if "instance_id" in settings.model_fields_set:
            settings.instance_id = f"{settings.instance_id}-w{settings.worker_slot}"
    freeze_startup_heap()
    uvloop.run(serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
