"""The three layers, checked on the code itself: pure rules import no IO, and each flow's code
lives in its own package.

A rules module is any module under a ``rules`` package (``tasks/rules/`` for the rules every
flow shares, ``tasks/<flow>/rules/`` or ``tasks/<flow>/rules.py`` for one flow's own). Rules take
``as_of``/``now`` and values and return decisions, so they may import the standard library, the
enums and the policy defaults, and other rules - never Prefect, SQLAlchemy, an SMTP client, a
database session or the models.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "tasks"
IO_MODULES = (
    "prefect",
    "sqlalchemy",
    "aiosmtplib",
    "smtplib",
    "psycopg",
    "crm_db.session",
    "crm_db.models",
    "crm_db.bulk",
    "crm_core.settings",
    "tasks.mail",
    "tasks.common",
)


def _rules_modules() -> list[Path]:
    found = [p for p in TASKS.rglob("*.py") if "rules" in p.relative_to(TASKS).parts[:-1]]
    found += [p for p in TASKS.glob("*/rules.py")]
    return sorted(p for p in found if p.name != "__init__.py")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_there_are_rules_modules_to_check() -> None:
    names = {p.relative_to(TASKS).as_posix() for p in _rules_modules()}
    assert {"rules/calendar.py", "revisits/rules/planning.py", "classification/rules.py"} <= names


@pytest.mark.parametrize("path", _rules_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_rules_module_imports_no_io(path: Path) -> None:
    bad = sorted(
        name
        for name in _imports(path)
        if any(name == io or name.startswith(io + ".") for io in IO_MODULES)
    )
    assert not bad, f"{path.relative_to(ROOT)} is a pure rules module but imports {bad}"


def test_no_flow_module_is_left_loose_at_the_top_of_tasks() -> None:
    """A flow's code lives in its package (tasks/revisits/, ...); tasks/ itself holds only the
    shared packages."""
    loose = sorted(p.name for p in TASKS.glob("*.py") if p.name != "__init__.py")
    assert loose == [], f"modules directly under tasks/: {loose}"


FLOW_PACKAGES = sorted(
    p.name
    for p in TASKS.iterdir()
    if p.is_dir() and p.name not in {"common", "rules", "mail"} and (p / "__init__.py").exists()
)


@pytest.mark.parametrize(
    "path",
    sorted([*TASKS.glob("common/*.py"), *TASKS.glob("rules/*.py"), *TASKS.glob("mail/*.py")]),
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_a_shared_module_imports_no_flow_package(path: Path) -> None:
    """What every flow uses must not pull in one flow's code."""
    assert {"revisits", "classification"} <= set(FLOW_PACKAGES)
    bad = sorted(
        name
        for name in _imports(path)
        if any(
            name == f"tasks.{flow}" or name.startswith(f"tasks.{flow}.") for flow in FLOW_PACKAGES
        )
    )
    assert not bad, f"{path.relative_to(ROOT)} is shared but imports flow code {bad}"
