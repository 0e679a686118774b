"""`python -m tollgate.contracts export|check`: regenerate or verify the published
JSON Schemas and AsyncAPI document (see `tollgate.contracts.schemas`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tollgate.contracts.schemas import drift, export


def _repository_root(start: Path) -> Path | None:
    for candidate in (start, *start.parents):
        if (candidate / "libs" / "contracts" / "pyproject.toml").is_file():
            return candidate
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tollgate.contracts",
        description="Regenerate or verify the contract's JSON Schemas and AsyncAPI document.",
    )
    parser.add_argument("command", choices=["export", "check"])
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="repository root (default: found by walking up from the current directory)",
    )
    args = parser.parse_args(argv)
    root = args.root or _repository_root(Path.cwd().resolve())
    if root is None:
        parser.error("not inside the Tollgate repository; pass --root")
    if args.command == "export":
        for path in export(root):
            print(f"wrote {path}")
        return 0
    report = drift(root)
    if report:
        print("\n".join(report))
        print("generated files differ from the models: run `python -m tollgate.contracts export`")
        return 1
    print("generated files match the models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
