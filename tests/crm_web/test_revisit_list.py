"""``/m/{token}``, a manager's full list of open revisits, against real SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from crm_core.signing import sign
from crm_db.enums import AbcClass, ContactChannel, RevisitStatus
from crm_db.models import Revisit
from crm_db.session import session_scope
from crm_web.access_log import redact_path
from crm_web.revisit_outcome import claims_from_token
from tests.crm_web.factories import NOW, SIGNING_KEY
from tests.factories import Org, make_customer, make_org

TODAY = date(2026, 11, 23)  # NOW in Asia/Shanghai


def list_token(staff_id: object, *, valid_for: timedelta = timedelta(days=30)) -> str:
    """As ``tasks.mail.links.revisit_list_url`` makes it."""
    return sign(SIGNING_KEY.encode(), "revisit_list", {"staff": staff_id}, NOW + valid_for)


def add_revisit(session, org: Org, due_on: date, **customer) -> int:  # type: ignore[no-untyped-def]
    row = make_customer(session, org, abc_class=AbcClass.B, **customer)
    revisit = Revisit(
        customer_id=row.id,
        assignee_id=org.account_manager.id,
        abc_class=AbcClass.B,
        channel=ContactChannel.PHONE,
        due_on=due_on,
    )
    session.add(revisit)
    session.flush()
    return revisit.id


def test_the_list_shows_every_open_revisit_with_full_phone_id_and_outcome_link(
    engine: Engine, client: TestClient
) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        overdue = add_revisit(session, org, TODAY - timedelta(days=4), phone="138 1234 5678")
        later = add_revisit(session, org, TODAY + timedelta(days=10), name="<b>李四</b>")
        closed = add_revisit(session, org, TODAY - timedelta(days=9))
        session.get(Revisit, closed).status = RevisitStatus.DONE  # type: ignore[union-attr]
        staff_id = org.account_manager.id

    response = client.get(f"/m/{list_token(staff_id)}")

    assert response.status_code == 200
    page = response.text
    assert "共 2 条待办回访，其中 1 条已逾期。" in page
    assert f"#{overdue}" in page and f"#{later}" in page and f"#{closed}" not in page
    assert '<a class="tel" href="tel:13812345678">138 1234 5678</a>' in page
    assert "逾期 4 天" in page
    assert "&lt;b&gt;李四&lt;/b&gt;" in page and "<b>李四" not in page
    links = re.findall(r'href="\.\./r/([^"]+)"', page)
    assert len(links) == 2
    claims = [claims_from_token(SIGNING_KEY.encode(), token, NOW) for token in links]
    assert [(c.revisit_id, c.staff_id) for c in claims if c] == [
        (overdue, staff_id),
        (later, staff_id),
    ]
    assert page.index(f"#{overdue}") < page.index(f"#{later}")  # most overdue first


def test_the_list_pages_with_a_next_link(engine: Engine, client: TestClient) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        ids = [add_revisit(session, org, TODAY - timedelta(days=n % 7)) for n in range(205)]
        staff_id = org.account_manager.id
    token = list_token(staff_id)

    first = client.get(f"/m/{token}").text
    (after,) = re.findall(r'href="\?after=([^"]+)" rel="next"', first)
    second = client.get(f"/m/{token}?after={after}").text

    shown = [int(i) for i in re.findall(r'<td class="id">#(\d+)</td>', first + second)]
    assert sorted(shown) == sorted(ids) and len(shown) == len(set(shown)) == 205
    assert 'rel="next"' not in second and 'href="?"' in second
    assert "共 205 条待办回访" in second


def test_an_inactive_managers_link_is_refused_clearly(engine: Engine, client: TestClient) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        add_revisit(session, org, TODAY)
        org.account_manager.active = False
        staff_id = org.account_manager.id

    response = client.get(f"/m/{list_token(staff_id)}", headers={"accept-language": "en"})

    assert response.status_code == 403
    # In the staff member's own language (zh-CN here), as the digest was.
    assert "此链接已停用" in response.text and "已不在职" in response.text
    assert "tel:" not in response.text


def test_bad_links_get_the_invalid_link_page(engine: Engine, client: TestClient) -> None:
    with session_scope(engine) as session:
        staff_id = make_org(session).account_manager.id
    good = list_token(staff_id)
    bad = [
        list_token(staff_id, valid_for=timedelta(seconds=-1)),  # expired
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),  # tampered
        sign(SIGNING_KEY.encode(), "revisit_outcome", {"staff": staff_id}, None),  # other purpose
        list_token(10**9),  # unknown staff
        list_token(True),
    ]
    pages = [client.get(f"/m/{token}") for token in bad]
    assert {p.status_code for p in pages} == {404}
    assert len({p.text for p in pages}) == 1
    assert client.post(f"/m/{good}").status_code == 405  # a list only shows; nothing to post


def test_the_token_is_kept_out_of_the_access_log() -> None:
    assert redact_path("/m/abc.def?after=2026-11-20_4") == "/m/<token>?after=2026-11-20_4"
    assert redact_path("/u/abc.def/resubscribe") == "/u/<token>/resubscribe"
