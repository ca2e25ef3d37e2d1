"""pytest plugin: write each test's markers into the JUnit XML as a ``markers`` property.

JUnit XML has no notion of markers, and ``scripts/check_postgres_tests.py`` must know which
tests needed PostgreSQL. Load with ``python -m pytest -p scripts.pytest_junit_markers``.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = sorted({marker.name for marker in item.iter_markers()})
        if names:
            item.user_properties.append(("markers", ",".join(names)))
