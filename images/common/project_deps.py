"""Write the project's requirements from pyproject.toml (dependencies, the named extras, the build
backend) to a file, one per line, for `pip install --constraint requirements.lock -r FILE`.

Runs at image BUILD time (stdlib only): the images install these before they copy the sources, so a
source change keeps the dependency layer, and then install the project itself with --no-deps.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    # The build backend too: the project is then installed with --no-build-isolation, offline.
    reqs += data.get("build-system", {}).get("requires", [])
    return list(dict.fromkeys(reqs))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("pyproject", type=Path)
    p.add_argument("--extra", action="append", default=[])
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    a.out.write_text("\n".join(requirements(a.pyproject, a.extra)) + "\n")


if __name__ == "__main__":
    main()
