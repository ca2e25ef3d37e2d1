"""Hostile input against a live ``crm web`` over real HTTP (uvicorn on 127.0.0.1, real sockets),
issue #17: 20 parallel POSTs of one link record exactly one answer (SQLite and PostgreSQL), and
random and forged tokens record nothing while the per-client brake fires.

The in-process versions (``tests/tasks/surveys/test_answer_recording.py``; all 10,000 random
tokens through the ASGI transport in ``test_survey_answer.py``) check the logic; these check it
through the server as deployed: separate connections, uvicorn's worker threads, the form parsed
off the wire. Over HTTP the random tokens are a sample of 1,000 of the same kinds: client and
server share this process's interpreter, and all 10,000 took 150 s on the shared 2-core machine
(the CI budget is for the whole suite)."""

from __future__ import annotations

import asyncio
import base64
import random

import httpx
from sqlalchemy import Engine

from crm_core.signing import sign
from crm_web.app import create_app
from tests.crm_web.factories import NOW, Clock, web_settings
from tests.crm_web.live_server import live_server
from tests.tasks.surveys.answer_factories import make_invitation, responses

FORM = {"content-type": "application/x-www-form-urlencoded"}
HTTP_GUESSES = 1_000
BODY = "score=3&service_rating=2&suggestion=%E6%8E%92%E9%98%9F%E5%A4%AA%E4%B9%85"


def test_twenty_parallel_posts_of_one_link_record_one_answer(engine: Engine) -> None:
    row = make_invitation(engine, now=NOW)
    app = create_app(engine, web_settings(), clock=Clock(NOW))

    async def post_all(base_url: str) -> list[httpx.Response]:
        # Twenty clients, each its own connection, released together.
        clients = [httpx.AsyncClient(base_url=base_url, timeout=60) for _ in range(20)]
        try:
            start = asyncio.Event()

            async def one(client: httpx.AsyncClient) -> httpx.Response:
                await start.wait()
                return await client.post(f"/s/{row.token}", content=BODY, headers=FORM)

            tasks = [asyncio.create_task(one(client)) for client in clients]
            await asyncio.sleep(0.05)
            start.set()
            return await asyncio.gather(*tasks)
        finally:
            await asyncio.gather(*(client.aclose() for client in clients))

    with live_server(app) as base_url:
        answers = asyncio.run(post_all(base_url))
    # One recorded it; the nineteen others posted the same answer: the same thanks, no second
    # row (a lost race is neither an error nor a duplicate).
    assert [r.status_code for r in answers] == [200] * 20
    assert len({r.text for r in answers}) == 1 and "3 / 10" in answers[0].text
    assert responses(engine) == 1


def _random_tokens(n: int, invitation_id: int) -> list[str]:
    rng = random.Random(18)
    tokens = []
    for i in range(n):
        if i % 10 == 0:  # forged: our shape and claim, signed with a guessed key
            tokens.append(
                sign(rng.randbytes(32), "survey_answer", {"invitation": invitation_id}, None)
            )
            continue
        text = base64.urlsafe_b64encode(rng.randbytes(rng.randint(8, 90))).decode().rstrip("=")
        tokens.append(text if i % 2 else f"{text[:40]}.{text[40:]}x")
    return tokens


def test_random_tokens_over_http_record_nothing_and_the_brake_fires(
    sqlite_engine: Engine,
) -> None:
    row = make_invitation(sqlite_engine, now=NOW)
    tokens = _random_tokens(HTTP_GUESSES, row.invitation_id)
    unbraked = create_app(sqlite_engine, web_settings(), clock=Clock(NOW))
    unbraked.state.survey_answer_limiter.failures = 10**9
    unbraked.state.survey_answer_limiter.requests = 10**9

    async def guess(base_url: str, batch: list[str], lanes: int) -> dict[int, int]:
        counts: dict[int, int] = {}
        queue = iter(batch)
        limits = httpx.Limits(max_connections=lanes)
        async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:

            async def lane() -> None:
                for token in queue:  # the lanes share one iterator: each token once
                    response = await client.post(f"/s/{token}", content="score=10", headers=FORM)
                    counts[response.status_code] = counts.get(response.status_code, 0) + 1

            await asyncio.gather(*(lane() for _ in range(lanes)))
        return counts

    with live_server(unbraked) as base_url:
        assert asyncio.run(guess(base_url, tokens, 8)) == {404: HTTP_GUESSES}
    assert responses(sqlite_engine) == 0

    # The same guessing against the brake as configured: one client is stopped after 20
    # refused links, and then its good link is refused too (429 with the wait), nothing written.
    braked = create_app(sqlite_engine, web_settings(), clock=Clock(NOW))
    with live_server(braked) as base_url:
        statuses = asyncio.run(guess(base_url, tokens[:200], 1))
        with httpx.Client(base_url=base_url) as client:
            stopped = client.post(f"/s/{row.token}", content="score=10", headers=FORM)
    assert statuses == {404: 20, 429: 180}
    assert stopped.status_code == 429 and int(stopped.headers["retry-after"]) > 0
    assert responses(sqlite_engine) == 0
