"""`python -m tollgate.usage [serve|migrate]`."""

from __future__ import annotations

from tollgate.kit.cli import service_main
from tollgate.usage.app import create_app
from tollgate.usage.config import Settings


def main() -> int:
    return service_main(
        service="usage",
        settings_factory=Settings,
        app_factory=create_app,
        migrations_package="tollgate.usage",
    )


if __name__ == "__main__":
    raise SystemExit(main())
