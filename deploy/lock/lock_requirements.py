"""Write requirements.lock: the exact versions the production image installs.

The lock is the closure of `huleedu-pipelines[deploy]`'s runtime requirements as installed in
this checkout's virtualenv (`make install`, Python 3.11 on Linux x86-64 like the image), with
torch's CPU build. Regenerate after changing dependencies in pyproject.toml:

    make install && .venv/bin/python deploy/lock/lock_requirements.py > requirements.lock

and rebuild the image (`docker compose build`).
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "huleedu-pipelines"
EXTRAS = ("deploy",)


def runtime_closure(project: str = PROJECT, extras: tuple[str, ...] = EXTRAS) -> dict[str, str]:
    """Installed name -> version for the project's requirements (with `extras`), recursively."""
    versions: dict[str, str] = {}
    pending: list[tuple[str, tuple[str, ...]]] = [(project, extras)]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while pending:
        name, wanted = pending.pop()
        key = (canonicalize_name(name), wanted)
        if key in seen:
            continue
        seen.add(key)
        distribution = importlib.metadata.distribution(name)
        versions[canonicalize_name(name)] = distribution.version
        for line in distribution.requires or []:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if requirement.marker and not any(
                requirement.marker.evaluate(environment) for environment in environments
            ):
                continue
            pending.append((requirement.name, tuple(sorted(requirement.extras))))
    versions.pop(canonicalize_name(project))
    return versions


def main() -> None:
    python = ".".join(platform.python_version_tuple()[:2])
    extras = ",".join(EXTRAS)
    header = [
        "The production image's Python dependencies, exact versions (the Dockerfile installs",
        f"these). The closure of huleedu-pipelines[{extras}] on Python {python}, {sys.platform},",
        "written by deploy/lock/lock_requirements.py; regenerate with",
        "  make install && .venv/bin/python deploy/lock/lock_requirements.py > requirements.lock",
        "torch is the CPU build (+cpu), from https://download.pytorch.org/whl/cpu.",
    ]
    for line in header:
        print(f"# {line}")
    for name, version in sorted(runtime_closure().items()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
