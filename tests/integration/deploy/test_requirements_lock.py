"""requirements.lock, which the Dockerfile installs: exact pins that satisfy pyproject.toml,
torch's CPU build, and a closed, consistent set (every requirement of a locked package, as its
metadata states it, is itself locked at a version that satisfies it)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[3]
LOCK = REPO / "requirements.lock"


def locked() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in LOCK.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line.strip())
        assert match, f"not an exact pin: {line!r}"
        pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def test_lock_says_how_to_regenerate_it() -> None:
    header = LOCK.read_text().splitlines()[:6]
    assert any("deploy/lock/lock_requirements.py > requirements.lock" in line for line in header)
    assert (REPO / "deploy" / "lock" / "lock_requirements.py").is_file()


def test_lock_pins_every_project_requirement_within_its_range() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["deploy"]]
    pins = locked()
    for line in requirements:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} does not satisfy {requirement.specifier}; regenerate the lock"
        )
        for extra in requirement.extras:
            assert extra in {"auth", "binary"}, extra
    assert str(pins["torch"]).endswith("+cpu"), "the image must get torch's CPU build"
    assert "dagster-docker" in pins and "flask-wtf" in pins  # the deploy extra's closure


def test_lock_is_closed_and_consistent() -> None:
    """Checked through the metadata of each locked version installed here (in CI, a fresh
    install may have newer releases of a few: those are checked where the versions agree)."""
    pins = locked()
    checked = 0
    for name, version in pins.items():
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if Version(distribution.version) != version:
            continue
        checked += 1
        for line in distribution.requires or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            dependency = canonicalize_name(requirement.name)
            assert dependency in pins, f"{name} needs {dependency}, which the lock misses"
            assert requirement.specifier.contains(pins[dependency], prereleases=True), (
                f"{name} needs {requirement}, the lock has {pins[dependency]}"
            )
    assert checked >= len(pins) // 2
