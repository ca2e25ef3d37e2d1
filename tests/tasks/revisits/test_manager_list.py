"""The digest's full list: the digest says how many it leaves out and links to the list; the list
(``tasks.revisits.manager_list``) pages through every open revisit of one manager. Real SQLite
files and real PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import Engine

from crm_db.enums import RevisitStatus
from crm_db.session import session_scope
from tasks.mail.render import render_email
from tasks.revisits import emails
from tasks.revisits.emails import queue_digests
from tasks.revisits.manager_list import Cursor, load_owner, load_page, tel_href
from tests.factories import make_org
from tests.tasks.revisits.test_notifications import AS_OF, _ctx, _link, _outbox, _revisit

BASE = "https://crm.example.test"


def _list_link(staff_id: int) -> str:
    return f"{BASE}/m/list-{staff_id}"


def _digest(engine: Engine) -> None:
    queue_digests(
        engine, _ctx(engine), outcome_url=_link, run_id=None, dry_run=False, list_url=_list_link
    )


def test_a_digest_past_its_limit_counts_the_rest_and_links_to_the_full_list(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emails, "DIGEST_MAX_ITEMS", 3)
    with session_scope(engine) as session:
        org = make_org(session)
        for days in (5, 4, 3, 0, 0):  # three overdue, two due today
            _revisit(session, org, AS_OF - timedelta(days=days))
        staff_id = org.account_manager.id

    _digest(engine)

    (mail,) = _outbox(engine, "revisit_digest")
    ctx = mail.context
    assert [i["overdue_days"] for i in ctx["items"]] == [5, 4, 3]  # the most overdue shown
    assert (ctx["total_count"], ctx["overdue_count"], ctx["more_count"]) == (5, 3, 2)
    assert ctx["list_url"] == _list_link(staff_id)
    for locale, more in (("zh-CN", "另有 2 位客户未在邮件中列出"), ("en", "2 more not listed")):
        rendered = render_email("revisit_digest", locale, ctx, base_url=BASE)
        assert more in rendered.text and more in rendered.html
        assert _list_link(staff_id) in rendered.text and _list_link(staff_id) in rendered.html
        assert "5" in rendered.subject and "(3" in rendered.subject.replace("（逾期 ", "(")


def test_a_digest_within_its_limit_says_nothing_more_and_no_zero_overdue(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        _revisit(session, org, AS_OF)
        _revisit(session, org, AS_OF)

    _digest(engine)

    (mail,) = _outbox(engine, "revisit_digest")
    ctx = mail.context
    assert (ctx["total_count"], ctx["overdue_count"], ctx["more_count"]) == (2, 0, 0)
    zh = render_email("revisit_digest", "zh-CN", ctx, base_url=BASE)
    en = render_email("revisit_digest", "en", ctx, base_url=BASE)
    assert "共有 2 位客户需要回访。" in zh.text and "已逾期" not in zh.text
    assert "2 customer revisits are due on 2026-11-23.\n" in en.text and "overdue" not in en.text
    for rendered in (zh, en):
        assert "未在邮件中列出" not in rendered.text and "more not listed" not in rendered.text
        assert ctx["list_url"] in rendered.text  # the full list (with phones) is still linked


def test_a_digest_with_overdue_revisits_still_says_how_many(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        _revisit(session, org, AS_OF - timedelta(days=2))
        _revisit(session, org, AS_OF)

    _digest(engine)

    ctx = _outbox(engine, "revisit_digest")[0].context
    assert "其中 1 位已逾期。" in render_email("revisit_digest", "zh-CN", ctx, base_url=BASE).text
    assert "; 1 overdue." in render_email("revisit_digest", "en", ctx, base_url=BASE).text


def test_the_list_pages_through_every_open_revisit_of_its_owner_most_overdue_first(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        other = make_org(session)
        dues = [AS_OF - timedelta(days=d) for d in (9, 3, 3, 0)] + [AS_OF + timedelta(days=20)]
        mine = [_revisit(session, org, due, phone=f"1381234{n:04d}") for n, due in enumerate(dues)]
        done = _revisit(session, org, AS_OF - timedelta(days=30))
        done.status = RevisitStatus.DONE
        _revisit(session, other, AS_OF - timedelta(days=40))  # someone else's
        staff_id = org.account_manager.id
        expected = [r.id for r in sorted(mine, key=lambda r: (r.due_on, r.id))]

    seen: list[int] = []
    after = None
    pages = 0
    while True:
        page = load_page(engine, staff_id, today=AS_OF, after=after, page_size=2)
        pages += 1
        assert (page.total, page.overdue) == (5, 3)
        seen += [row.revisit_id for row in page.rows]
        if page.next_cursor is None:
            break
        after = Cursor.decode(page.next_cursor.encode())  # through the URL and back
    assert seen == expected and pages == 3
    first = load_page(engine, staff_id, today=AS_OF, after=None, page_size=10).rows[0]
    assert first.phone == "13812340000" and first.due_on == AS_OF - timedelta(days=9)


def test_the_owner_says_whether_they_are_still_active(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        org.account_manager.active = False
        left, stays = org.account_manager.id, org.branch_manager.id
    assert load_owner(engine, left) is not None and not load_owner(engine, left).active  # type: ignore[union-attr]
    assert load_owner(engine, stays) is not None and load_owner(engine, stays).active  # type: ignore[union-attr]
    assert load_owner(engine, 10**9) is None


@pytest.mark.parametrize(
    ("text", "cursor"),
    [
        ("2026-11-20_42", Cursor(date(2026, 11, 20), 42)),
        ("", None),
        ("2026-13-01_4", None),
        ("2026-11-20_", None),
        ("2026-11-20_4;drop", None),
        ("x" * 40, None),
    ],
)
def test_cursor_decoding_refuses_what_it_did_not_encode(text: str, cursor: Cursor | None) -> None:
    assert Cursor.decode(text) == cursor


@pytest.mark.parametrize(
    ("phone", "href"),
    [
        ("13812345678", "tel:13812345678"),
        ("+86 138-1234-5678", "tel:+8613812345678"),
        ("(0571) 8888.6666", "tel:057188886666"),
        ("138 1234 5678 ext", None),
        ("javascript:alert(1)", None),
        ("+", None),
        (None, None),
    ],
)
def test_tel_links_hold_only_a_number(phone: str | None, href: str | None) -> None:
    assert tel_href(phone) == href
