"""Where the browser tests find Chromium, and that CI fails rather than skips without it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.crm_web.browser import (
    CHROMIUM_ENV,
    CHROMIUM_NAMES,
    find_chromium,
    launch_chromium,
    on_ci,
    require_chromium,
)


def fake_executable(directory: Path, name: str, *, executable: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize("name", CHROMIUM_NAMES)
def test_each_name_is_found_on_path(tmp_path: Path, name: str) -> None:
    expected = fake_executable(tmp_path / "bin", name)
    assert find_chromium({"PATH": str(tmp_path / "empty") + ":" + str(tmp_path / "bin")}) == (
        expected
    )


def test_names_are_tried_in_order(tmp_path: Path) -> None:
    fake_executable(tmp_path / "a", "google-chrome")
    preferred = fake_executable(tmp_path / "b", "chromium")
    assert find_chromium({"PATH": f"{tmp_path / 'a'}:{tmp_path / 'b'}"}) == preferred


def test_a_file_that_is_not_executable_does_not_count(tmp_path: Path) -> None:
    fake_executable(tmp_path, "chromium", executable=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium on PATH"):
        require_chromium({"PATH": str(tmp_path)})


def test_the_override_wins_over_path(tmp_path: Path) -> None:
    fake_executable(tmp_path / "bin", "chromium")
    override = fake_executable(tmp_path / "elsewhere", "my-chromium")
    environ = {"PATH": str(tmp_path / "bin"), CHROMIUM_ENV: str(override)}
    assert require_chromium(environ) == override


@pytest.mark.parametrize("ci", ["", "false"])
def test_an_override_that_names_nothing_fails_even_locally(tmp_path: Path, ci: str) -> None:
    fake_executable(tmp_path, "chromium")
    environ = {"PATH": str(tmp_path), CHROMIUM_ENV: str(tmp_path / "missing"), "CI": ci}
    with pytest.raises(pytest.fail.Exception, match=CHROMIUM_ENV):
        require_chromium(environ)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("TRUE", True), ("", False), ("false", False), ("0", False)],
)
def test_ci_is_read_from_the_ci_variable(value: str, expected: bool) -> None:
    assert on_ci({"CI": value}) is expected
    assert on_ci({}) is False


def test_without_chromium_ci_fails_naming_every_name(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        require_chromium({"PATH": str(tmp_path), "CI": "true"})
    assert "cannot run on CI" in str(failed.value)
    for name in CHROMIUM_NAMES:
        assert name in str(failed.value)


def test_without_chromium_a_local_run_skips_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        require_chromium({"PATH": str(tmp_path)})


def test_the_module_fixture_path_fails_on_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the browser test modules' fixtures call, with the process environment."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv(CHROMIUM_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match="cannot run on CI"):
        next(launch_chromium())
