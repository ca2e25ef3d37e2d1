"""Fail CI unless the PostgreSQL tests really ran: none skipped, at least one executed.

Reads the JUnit XML of a pytest run made with ``-p scripts.pytest_junit_markers``. A test counts
as a PostgreSQL test when it carries the ``postgres`` marker, or when its skip reason names
``CRM_TEST_POSTGRES_URL`` (a test that used the fixture but forgot the marker).

Usage: python scripts/check_postgres_tests.py var/ci/junit-*.xml (one or more files; their
tests are added up, as ``make test`` writes one file per step)
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

POSTGRES_MARKER = "postgres"
SKIP_HINT = "CRM_TEST_POSTGRES_URL"


def _name(case: ET.Element) -> str:
    return f"{case.get('classname', '')}::{case.get('name', '')}"


def _markers(case: ET.Element) -> set[str]:
    found: set[str] = set()
    for prop in case.iter("property"):
        if prop.get("name") == "markers":
            found.update(filter(None, (prop.get("value") or "").split(",")))
    return found


def check(junit_xml: Path) -> tuple[int, list[str]]:
    """Returns (PostgreSQL tests executed, names of PostgreSQL tests skipped)."""
    executed = 0
    skipped: list[str] = []
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        skip = case.find("skipped")
        skip_text = "" if skip is None else f"{skip.get('message', '')} {skip.text or ''}"
        is_postgres = POSTGRES_MARKER in _markers(case) or SKIP_HINT in skip_text
        if not is_postgres:
            continue
        if skip is not None:
            skipped.append(_name(case))
        else:
            executed += 1
    return executed, skipped


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write(__doc__ or "")
        return 2
    executed = 0
    skipped: list[str] = []
    for name in argv[1:]:
        ran, missed = check(Path(name))
        executed += ran
        skipped += missed
    if skipped:
        sys.stderr.write(f"FAIL: {len(skipped)} PostgreSQL tests were skipped:\n")
        sys.stderr.writelines(f"  {name}\n" for name in skipped[:50])
        return 1
    if executed == 0:
        sys.stderr.write("FAIL: no PostgreSQL test ran (none collected with the marker?)\n")
        return 1
    sys.stdout.write(f"PostgreSQL tests: {executed} ran, 0 skipped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
