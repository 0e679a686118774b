"""`python -m tollgate.billing [serve|migrate|republish|top-up]`."""

from __future__ import annotations

from tollgate.billing.app import create_app
from tollgate.billing.config import Settings
from tollgate.billing.republish import republish
from tollgate.billing.top_up import top_up
from tollgate.kit.cli import service_main


def main() -> int:
    return service_main(
        service="billing",
        settings_factory=Settings,
        app_factory=create_app,
        migrations_package="tollgate.billing",
        commands={"republish": republish, "top-up": top_up},
    )


if __name__ == "__main__":
    raise SystemExit(main())
