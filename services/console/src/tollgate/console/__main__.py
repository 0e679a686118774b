"""`python -m tollgate.console [serve]`."""

from __future__ import annotations

from tollgate.console.app import create_app
from tollgate.console.config import Settings
from tollgate.kit.cli import service_main


def main() -> int:
    return service_main(service="console", settings_factory=Settings, app_factory=create_app)


if __name__ == "__main__":
    raise SystemExit(main())
