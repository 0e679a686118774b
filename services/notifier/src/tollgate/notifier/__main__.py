"""`python -m tollgate.notifier [serve|migrate]`."""

from __future__ import annotations

from tollgate.kit.cli import service_main
from tollgate.notifier.app import create_app
from tollgate.notifier.config import Settings


def main() -> int:
    return service_main(
        service="notifier",
        settings_factory=Settings,
        app_factory=create_app,
        migrations_package="tollgate.notifier",
    )


if __name__ == "__main__":
    raise SystemExit(main())
