"""The dependency floors and the lock file (constraints.txt) say what was tested, and exclude what is unsafe.

`make` installs with ``pip -c constraints.txt``, so the environment these tests run in is the lock's: every package
of the project's dependency closure must be pinned there at exactly its installed version, and every pin must
satisfy pyproject.toml's requirements (a renewed lock that broke a floor would be caught here).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

EXTRAS = ("dev", "nlp", "sweep")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirements() -> list[Requirement]:
    project = _pyproject()["project"]
    lines = list(project["dependencies"])
    for extra in EXTRAS:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"constraints.txt: {line!r} is not an exact pin (name==version)"
        pins[canonicalize_name(name)] = Version(version)
    return pins


def _closure() -> dict[str, Version]:
    """Installed version of every distribution the project needs (its extras included), found from metadata."""
    found: dict[str, Version] = {}
    todo = [Requirement(f"dllabs[{','.join(EXTRAS)}]")]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            continue  # an optional dependency not installed on this platform
        key = (name, tuple(sorted(req.extras)))
        if key in found:
            continue
        found[key] = Version(dist.version)
        for text in dist.requires or []:
            sub = Requirement(text)
            extras = req.extras or {""}
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    return {name: version for (name, _), version in found.items() if name != "dllabs"}


def test_every_installed_dependency_is_pinned_at_its_installed_version():
    pins = _pins()
    mismatched = {
        name: (str(version), str(pins.get(name)))
        for name, version in _closure().items()
        if pins.get(name) != Version(version.public)
    }
    assert not mismatched, f"installed vs constraints.txt (run make lock, then make test): {mismatched}"


def test_every_pin_satisfies_pyproject():
    pins = _pins()
    for req in _requirements():
        pinned = pins.get(canonicalize_name(req.name))
        assert pinned is not None, f"{req.name} is a requirement but not pinned in constraints.txt"
        assert req.specifier.contains(pinned, prereleases=True), f"constraints.txt {req.name}=={pinned} breaks {req}"


@pytest.mark.parametrize(
    ("package", "unsafe"),
    [
        ("lightning", ["2.6.2", "2.6.3", "2.6.5"]),  # compromised on PyPI; checkpoint hyper-parameters run code
        ("torch", ["2.5.1", "2.9.1"]),  # torch.load(weights_only=True) bypasses (CVE-2025-32434, CVE-2026-24747)
        ("transformers", ["4.56.0", "5.4.0"]),  # CVE-2026-1839, CVE-2026-5241
    ],
)
def test_floors_exclude_versions_with_advisories(package, unsafe):
    req = next(r for r in _requirements() if canonicalize_name(r.name) == package)
    admitted = [v for v in unsafe if req.specifier.contains(v, prereleases=True)]
    assert not admitted, f"{req} admits {admitted}"
