"""The pytest warning filters of pyproject.toml: our own deprecations fail, others are shown."""

from __future__ import annotations

import warnings

import pytest


def warn_from(module: str, category: type[Warning] = DeprecationWarning) -> None:
    # warn_explicit attributes the warning to ``module`` exactly as a warn() called there would.
    warnings.warn_explicit("old API", category, filename=f"{module}.py", lineno=1, module=module)


@pytest.mark.parametrize(
    "module",
    [
        "crm_core.settings",
        "crm_db",
        "crm_cli.main",
        "crm_web.app",
        "tasks.mail.outbox",
        "flows.revisits",
        "scripts.crm_db_state",
        "tests.factories",
    ],
)
def test_a_deprecation_in_our_code_fails(module: str) -> None:
    with pytest.raises(DeprecationWarning, match="old API"):
        warn_from(module)
    with pytest.raises(PendingDeprecationWarning, match="old API"):
        warn_from(module, PendingDeprecationWarning)


@pytest.mark.parametrize("module", ["prefect.flows", "sqlalchemy.orm", "tasksmith", "flowsheet"])
def test_a_third_party_deprecation_is_recorded_not_raised(module: str) -> None:
    # catch_warnings keeps the active filters (pytest.warns would reset them to "always").
    with warnings.catch_warnings(record=True) as caught:
        warn_from(module)
    assert [(w.category, str(w.message)) for w in caught] == [(DeprecationWarning, "old API")]
