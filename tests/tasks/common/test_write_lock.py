"""The write-lock helper with real concurrent connections: two threads, driven by events."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from crm_db.enums import StaffRole
from crm_db.models import Staff
from crm_db.session import session_scope
from tasks.common.write_lock import for_update, get_for_update, lock_rows, write_transaction
from tests.factories import make_staff

WAIT = 20.0  # an upper bound for a thread to get somewhere, never a sleep


def _staff(engine: Engine, n: int) -> list[int]:
    with session_scope(engine) as session:
        return [make_staff(session, StaffRole.ACCOUNT_MANAGER).id for _ in range(n)]


def _waiting_on_lock(engine: Engine) -> bool:
    """PostgreSQL: is another backend waiting for a lock right now?"""
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        )


def _wait_until_blocked(engine: Engine, second_got_lock: threading.Event) -> None:
    """Returns once the second writer is observably waiting (PostgreSQL: pg_stat_activity)
    or, on SQLite (whose busy wait cannot be observed), once it has not got the lock in a
    while. Fails if the second writer got the lock while the first holds it."""
    if engine.dialect.name == "postgresql":
        for _ in range(2000):
            assert not second_got_lock.is_set(), "the second writer did not wait"
            if _waiting_on_lock(engine):
                return
            second_got_lock.wait(0.01)
        raise AssertionError("the second writer never waited for the lock")
    assert not second_got_lock.wait(0.5), "the second writer did not wait"


@pytest.mark.parametrize(
    "lock",
    [
        pytest.param(lambda s, i: lock_rows(s, select(Staff.id).where(Staff.id == i)), id="rows"),
        pytest.param(lambda s, i: get_for_update(s, Staff, i), id="get"),
    ],
)
def test_a_second_writer_waits_and_then_sees_the_first_ones_write(
    engine: Engine, lock: Callable[[Session, int], object]
) -> None:
    (staff_id,) = _staff(engine, 1)
    first_locked, release = threading.Event(), threading.Event()
    second_started, second_got_lock = threading.Event(), threading.Event()
    seen: list[str] = []
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with session_scope(engine) as session:
                lock(session, staff_id)
                first_locked.set()
                assert release.wait(WAIT)
                session.execute(update(Staff).where(Staff.id == staff_id).values(name="first"))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            first_locked.set()

    def second() -> None:
        try:
            with session_scope(engine) as session:
                second_started.set()
                lock(session, staff_id)
                second_got_lock.set()
                seen.append(session.scalars(select(Staff.name).where(Staff.id == staff_id)).one())
        except BaseException as exc:
            errors.append(exc)
            second_got_lock.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert first_locked.wait(WAIT)
    threads[1].start()
    assert second_started.wait(WAIT)
    try:
        _wait_until_blocked(engine, second_got_lock)
    finally:
        release.set()
        for thread in threads:
            thread.join(WAIT)
    assert not errors
    assert seen == ["first"]  # it waited for the first commit, then read it


@pytest.mark.postgres
def test_skip_locked_claims_take_the_other_rows_without_waiting(pg_engine: Engine) -> None:
    ids = _staff(pg_engine, 3)
    first_locked, release = threading.Event(), threading.Event()
    claimed: list[list[int]] = []

    def first() -> None:
        with write_transaction(pg_engine) as conn:
            conn.execute(for_update(select(Staff.id).where(Staff.id.in_(ids[:2]))))
            first_locked.set()
            assert release.wait(WAIT)

    holder = threading.Thread(target=first)
    holder.start()
    try:
        assert first_locked.wait(WAIT)
        # Runs while the first transaction still holds two of the rows: it must not wait.
        with write_transaction(pg_engine) as conn:
            statement = select(Staff.id).where(Staff.id.in_(ids)).order_by(Staff.id)
            claimed.append(list(conn.scalars(for_update(statement, skip_locked=True))))
    finally:
        release.set()
        holder.join(WAIT)
    assert claimed == [ids[2:]]


def test_write_transaction_rolls_back_on_error(engine: Engine) -> None:
    (staff_id,) = _staff(engine, 1)
    with pytest.raises(RuntimeError), write_transaction(engine) as conn:
        conn.execute(update(Staff).where(Staff.id == staff_id).values(name="changed"))
        raise RuntimeError("boom")
    with session_scope(engine) as session:
        assert session.get(Staff, staff_id).name != "changed"  # type: ignore[union-attr]
