"""requirements.txt (the exact pins `make setup` installs) and pyproject.toml (the ranges of the
package and its extras) name the same packages, and every pin lies in its range; only the `ray`
extra is left out of the pins (README, "Sweeps")."""

import re

import tomllib
from packaging.requirements import Requirement

from tests.conftest import REPO

NOT_PINNED_EXTRAS = ("ray",)  # optional, for Ray clusters; `make setup` never installs it


def pins() -> dict[str, str]:
    found = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert match, f"requirements.txt: {line!r} is not an exact pin (name==version)"
        found[_name(match.group(1))] = match.group(2)
    return found


def ranges() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    listed = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        if extra not in NOT_PINNED_EXTRAS:
            listed += requirements
    found = {}
    for text in listed:
        requirement = Requirement(text)
        if requirement.name == "lra-bench":  # an extra made of other extras
            continue
        found.setdefault(_name(requirement.name), requirement)
    return found


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_pins_and_extras_name_the_same_packages():
    pinned, ranged = pins(), ranges()
    assert sorted(set(pinned) - set(ranged)) == [], "pinned but in no pyproject list"
    assert sorted(set(ranged) - set(pinned)) == [], "in pyproject but not pinned"


def test_every_pin_lies_in_its_range():
    ranged = ranges()
    for name, version in pins().items():
        assert ranged[name].specifier.contains(version, prereleases=True), (
            f"{name}=={version} is outside pyproject's {ranged[name]}"
        )


def test_the_optional_ray_launcher_is_not_pinned():
    assert "hydra-ray-launcher" not in pins()
