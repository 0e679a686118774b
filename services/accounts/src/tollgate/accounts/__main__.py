"""`python -m tollgate.accounts [serve|migrate|<command>]`; commands in `commands.py`."""

from __future__ import annotations

from tollgate.accounts.app import create_app
from tollgate.accounts.commands import COMMANDS
from tollgate.accounts.config import Settings
from tollgate.kit.cli import service_main


def main() -> int:
    return service_main(
        service="accounts",
        settings_factory=Settings,
        app_factory=create_app,
        migrations_package="tollgate.accounts",
        commands=dict(COMMANDS),
    )


if __name__ == "__main__":
    raise SystemExit(main())
