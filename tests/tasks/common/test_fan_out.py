"""Fan-out helpers: span splitting (pure), and waiting for child flow runs against the real
Prefect test API (runs created and moved through their states with the client, as a worker and
the child flow would)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.states import Completed, Failed, Pending, Running, State

from tasks.common.fan_out import FanOutError, child_results, split_span, wait_for


@pytest.mark.parametrize(
    ("lo", "hi", "parts", "expected"),
    [
        (1, 10, 3, [(1, 4), (5, 7), (8, 10)]),
        (1, 9, 3, [(1, 3), (4, 6), (7, 9)]),
        (5, 5, 4, [(5, 5)]),
        (1, 3, 8, [(1, 1), (2, 2), (3, 3)]),
        (7, 6, 2, []),
    ],
)
def test_split_span_covers_every_id_once_in_order(
    lo: int, hi: int, parts: int, expected: list[tuple[int, int]]
) -> None:
    spans = split_span(lo, hi, parts)
    assert spans == expected
    covered = [i for a, b in spans for i in range(a, b + 1)]
    assert covered == list(range(lo, hi + 1))


def test_split_span_of_a_large_span_differs_by_at_most_one_id() -> None:
    spans = split_span(1, 1_000_003, 4)
    lengths = [b - a + 1 for a, b in spans]
    assert sum(lengths) == 1_000_003 and max(lengths) - min(lengths) == 1


def test_split_span_refuses_no_parts() -> None:
    with pytest.raises(ValueError, match="parts must be positive"):
        split_span(1, 10, 0)


@flow(name="fan-out-test-child", persist_result=True, result_serializer="json")
def _child(n: int) -> dict[str, dict[str, int]]:
    return {"EAST": {"created": n}}


@pytest.fixture
def client(prefect_harness: None) -> Iterator[SyncPrefectClient]:
    with get_client(sync_client=True) as c:
        yield c


def _runs(client: SyncPrefectClient, *names: str) -> list[FlowRun]:
    return [client.create_flow_run(_child, name=name, state=Pending()) for name in names]


def _advance(client: SyncPrefectClient, steps: list[dict[UUID, State]]) -> Callable[[float], None]:
    """A ``sleep`` that, at each poll, moves runs to the next states (what workers would do)."""

    def sleep(_: float) -> None:
        for run_id, state in steps.pop(0).items():
            client.set_flow_run_state(run_id, state, force=True)

    return sleep


def test_wait_returns_once_every_child_completed(client: SyncPrefectClient) -> None:
    a, b = _runs(client, "span 1/2", "span 2/2")
    sleep = _advance(
        client,
        [{a.id: Running(), b.id: Running()}, {a.id: Completed()}, {b.id: Completed()}],
    )
    done = wait_for([a.id, b.id], timeout_s=60, poll_s=0, sleep=sleep)
    assert [run.name for run in done] == ["span 1/2", "span 2/2"]
    assert all(run.state is not None and run.state.is_completed() for run in done)


def test_a_failed_child_fails_the_wait_by_its_name_after_the_others_end(
    client: SyncPrefectClient,
) -> None:
    a, b = _runs(client, "span 1/2", "span 2/2")
    sleep = _advance(client, [{a.id: Failed(message="boom"), b.id: Running()}, {b.id: Completed()}])
    with pytest.raises(FanOutError, match=r"did not complete: span 1/2 \(Failed\)$"):
        wait_for([a.id, b.id], timeout_s=60, poll_s=0, sleep=sleep)
    # The wait went on until the other child ended, so nothing was left running unseen.
    state = client.read_flow_run(b.id).state
    assert state is not None and state.is_completed()


def test_a_child_past_the_timeout_is_named_and_cancelled(client: SyncPrefectClient) -> None:
    a, b = _runs(client, "span 1/2", "span 2/2")
    client.set_flow_run_state(a.id, Completed(), force=True)
    ticks = iter([0.0, 5.0, 11.0])
    with pytest.raises(FanOutError, match=r"not finished after 10 s .*: span 2/2 \(Pending\)"):
        wait_for(
            [a.id, b.id], timeout_s=10, poll_s=0, clock=lambda: next(ticks), sleep=lambda _: None
        )
    state = client.read_flow_run(b.id).state
    assert state is not None and state.name in {"Cancelling", "Cancelled"}


def test_child_results_come_back_from_the_result_storage(client: SyncPrefectClient) -> None:
    state = _child(3, return_state=True)
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    done = wait_for([run_id], timeout_s=60, poll_s=0)
    assert child_results(done) == [{"EAST": {"created": 3}}]
