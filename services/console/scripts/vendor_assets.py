"""Refresh the console's vendored browser libraries from the npm registry.

Each library is a pinned version fetched with `npm pack <name>@<version>` (the npm
registry's tarball, checked against its integrity hash by npm), unpacked, and the
files the console serves are copied with the package's licence into
`src/tollgate/console/static/vendor/<name>/`. Running the console needs none of this
(the copies are committed); only refreshing them needs Node's `npm`.

    python services/console/scripts/vendor_assets.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[1] / "src" / "tollgate" / "console" / "static" / "vendor"

# name in the registry, exact version, folder under static/vendor, files to copy
ASSETS: list[tuple[str, str, str, list[str]]] = [
    ("htmx.org", "2.0.11", "htmx", ["dist/htmx.min.js", "LICENSE"]),
    ("uplot", "1.6.32", "uplot", ["dist/uPlot.iife.min.js", "dist/uPlot.min.css", "LICENSE"]),
]


def vendor(package: str, version: str, folder: str, files: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", f"{package}@{version}", "--silent"], cwd=tmp, check=True)
        (tarball,) = Path(tmp).glob("*.tgz")
        with tarfile.open(tarball) as archive:
            archive.extractall(tmp, filter="data")
        target = VENDOR / folder
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in files:
            shutil.copy(Path(tmp) / "package" / name, target / Path(name).name)
        (target / "VERSION").write_text(f"{package}@{version}\n")
    print(f"{package}@{version} -> {target}")


def main() -> int:
    for package, version, folder, files in ASSETS:
        vendor(package, version, folder, files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
