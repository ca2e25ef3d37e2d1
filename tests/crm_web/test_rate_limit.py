"""The per-client brake (``crm_web.rate_limit``), on a clock the test moves."""

from __future__ import annotations

from crm_web.rate_limit import ClientLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_request_budget_is_per_client_and_window() -> None:
    clock = FakeClock()
    limiter = ClientLimiter(requests=3, window_s=60, clock=clock)
    assert [limiter.admit("a") for _ in range(3)] == [None, None, None]
    clock.now += 20
    assert limiter.admit("a") == 40  # seconds until the window that began at 1000 ends
    assert limiter.admit("b") is None  # another client is not affected
    clock.now += 40
    assert limiter.admit("a") is None  # a new window
    assert limiter.refused == 1


def test_refused_links_stop_a_client_for_the_failure_window() -> None:
    clock = FakeClock()
    limiter = ClientLimiter(requests=1000, failures=2, failure_window_s=600, clock=clock)
    for _ in range(2):
        assert limiter.admit("guesser") is None
        limiter.failed("guesser")
    clock.now += 100
    assert limiter.admit("guesser") == 500
    assert limiter.admit("customer") is None
    clock.now += 500
    assert limiter.admit("guesser") is None


def test_memory_is_bounded_by_forgetting_the_least_recent_clients() -> None:
    clock = FakeClock()
    limiter = ClientLimiter(requests=1, max_clients=2, clock=clock)
    assert limiter.admit("a") is None
    assert limiter.admit("b") is None
    assert limiter.admit("a") is not None  # a is over budget, and now the most recent
    assert limiter.admit("c") is None  # forgets b, the least recent
    assert limiter.admit("a") is not None  # a is still remembered
    assert limiter.admit("b") is None  # b starts afresh
