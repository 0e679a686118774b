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
    # The portal's API reference (docs, code samples, try-it); the self-contained browser
    # build, about 4.7 MB, served only on the portal's docs pages.
    ("@scalar/api-reference", "1.76.0", "scalar", ["dist/browser/standalone.js"]),
]

# Packages whose tarball ships no licence file: the licence their package.json declares,
# in the text of their repository's LICENSE.
LICENCES = {
    "@scalar/api-reference": "MIT License\n\nCopyright (c) 2023-present Scalar\n\n"
    "Permission is hereby granted, free of charge, to any person obtaining a copy\n"
    'of this software and associated documentation files (the "Software"), to deal\n'
    "in the Software without restriction, including without limitation the rights\n"
    "to use, copy, modify, merge, publish, distribute, sublicense, and/or sell\n"
    "copies of the Software, and to permit persons to whom the Software is\n"
    "furnished to do so, subject to the following conditions:\n\n"
    "The above copyright notice and this permission notice shall be included in all\n"
    "copies or substantial portions of the Software.\n\n"
    'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR\n'
    "IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,\n"
    "FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE\n"
    "AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER\n"
    "LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,\n"
    "OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE\n"
    "SOFTWARE.\n",
}


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
        if package in LICENCES:
            (target / "LICENSE").write_text(LICENCES[package])
        (target / "VERSION").write_text(f"{package}@{version}\n")
    print(f"{package}@{version} -> {target}")


def main() -> int:
    wanted = set(sys.argv[1:])  # folder names; none = all
    for package, version, folder, files in ASSETS:
        if not wanted or folder in wanted:
            vendor(package, version, folder, files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
