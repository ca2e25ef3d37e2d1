"""Rendering every email kind: completeness, escaping, safe links, locale fallback, CSS inlining."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import TemplateError

from tasks.mail.kinds import KINDS, UnknownEmailKind, get_kind
from tasks.mail.links import UnsafeURL
from tasks.mail.render import (
    LOCALES,
    TemplateContextError,
    available_locales,
    clean_subject,
    inline_template_css,
    render_email,
    required_variables,
    resolve_locale,
)

BASE = "http://127.0.0.1:8000"
CASES = [(kind, locale) for kind in sorted(KINDS) for locale in LOCALES]
HOSTILE = [
    "Eve\r\nBcc: x@evil.test",
    "<script>alert(1)</script>",
    "javascript:alert(1)",
    '" onmouseover="alert(1)',
    "' onmouseover='alert(1)",
    "<img src=x onerror=alert(1)>",
    "{{ 7*7 }} {% raw %}",
    "A & B <b>bold</b>",
    "田中 太郎",
    "😀👨‍👩‍👧 Zoë",
]
TAG = re.compile(r"<[a-zA-Z/!][^>]*>")


class _Structure(HTMLParser):
    """Every start tag with its attribute names and its href, to compare renders structurally."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[str, ...]]] = []
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, tuple(sorted(name for name, _ in attrs))))
        self.hrefs.extend(value or "" for name, value in attrs if name == "href")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def structure(html: str) -> _Structure:
    parser = _Structure()
    parser.feed(html)
    parser.close()
    return parser


def sample(kind: str) -> dict[str, Any]:
    return copy.deepcopy(get_kind(kind).sample_context)


def with_customer_text(kind: str, value: str) -> dict[str, Any]:
    """The sample context with every customer-provided text field set to ``value``."""
    ctx = sample(kind)
    for key in (
        "customer_name",
        "last_issue",
        "manager_name",
        "recipient_name",
        "region_name",
        "run_name",  # a flow run's name, typed in the Prefect UI's Custom run form
        "scope_name",
        "state_message",  # an exception's text, which may quote data
        "summary",
    ):
        if key in ctx:
            ctx[key] = value
    for item in ctx.get("items", []):
        item["customer_name"] = value
        if "account_manager_name" in item:
            item["account_manager_name"] = value
        if "last_contact_outcome" in item:
            item["last_contact_outcome"] = value
        if item.get("comment"):  # a survey answer's words (care alerts)
            item["comment"] = value
    for item in ctx.get("missing", []):  # regions whose weekly form is missing
        item["region_name"] = value
    for item in ctx.get("regions", []):  # the weekly forms' roll-up: what managers typed
        item["region_name"] = value
        for key in ("obstacles", "next_week_plan"):
            if item.get(key) is not None:
                item[key] = value
    return ctx


# ------------------------------------------------------------------ completeness


@pytest.mark.parametrize(("kind", "locale"), CASES)
def test_every_kind_and_locale_renders_with_its_sample_context(kind: str, locale: str) -> None:
    assert available_locales(kind) == LOCALES
    rendered = render_email(kind, locale, sample(kind), base_url=BASE)
    assert rendered.subject and rendered.text.strip() and rendered.html.strip()
    for part in (rendered.subject, rendered.text, rendered.html):
        assert "{{" not in part and "{%" not in part and "}}" not in part
        assert "None" not in part  # absent values print as a dash or nothing, never "None"
    assert "\n" not in rendered.subject and "\r" not in rendered.subject
    assert rendered.subject == clean_subject(rendered.subject)
    assert TAG.search(rendered.text) is None, "text part must be written text, not HTML"
    assert rendered.html.lstrip().lower().startswith("<!doctype html>")
    assert f'lang="{locale}"' in rendered.html
    # CSS is inlined: styled elements, no <style> blocks for clients to drop.
    assert "<style" not in rendered.html
    assert re.search(r'<td[^>]*style="[^"]*padding', rendered.html)
    assert re.search(r'<h1[^>]*style="', rendered.html)
    page = structure(rendered.html)
    assert all(h.startswith("https://") or h.startswith(BASE + "/") for h in page.hrefs)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sample_contexts_survive_the_json_outbox(kind: str) -> None:
    ctx = get_kind(kind).sample_context
    assert json.loads(json.dumps(ctx)) == ctx
    assert required_variables(kind) <= ctx.keys()


@pytest.mark.parametrize("locale", LOCALES)
def test_digest_lists_every_item_with_its_context(locale: str) -> None:
    ctx = sample("revisit_digest")
    rendered = render_email("revisit_digest", locale, ctx, base_url=BASE)
    page = structure(rendered.html)
    grid = rendered.html.split('class="grid"')[1]
    body_rows = grid.split("<tbody>")[1].split("</tbody>")[0].count("<tr")
    assert body_rows == len(ctx["items"])
    for item in ctx["items"]:
        assert item["customer_name"] in rendered.html and item["customer_name"] in rendered.text
        assert item["outcome_url"] in page.hrefs
        assert item["outcome_url"] in rendered.text
        assert item["due_date"] in rendered.text
    assert "-23.5%" in rendered.html and "+12.0%" in rendered.text
    flag = "待重新分配" if locale == "zh-CN" else "needs reassignment"
    flagged = sum(1 for item in ctx["items"] if item["needs_reassignment"])
    assert rendered.html.count('class="flag"') == flagged == 1
    assert flag in rendered.html and flag in rendered.text
    assert rendered.html.count('class="notice"') == 1
    assert "逾期" in rendered.subject if locale == "zh-CN" else "overdue" in rendered.subject


def test_digest_masks_phone_numbers_even_when_given_raw() -> None:
    ctx = sample("revisit_digest")
    ctx["items"][0]["phone"] = "13812345678"
    rendered = render_email("revisit_digest", "en", ctx, base_url=BASE)
    assert "13812345678" not in rendered.html and "13812345678" not in rendered.text
    assert "*******5678" in rendered.html and "*******5678" in rendered.text


def test_customer_mail_shows_a_visible_unsubscribe_link_from_the_context() -> None:
    ctx = sample("revisit_care")
    ctx["unsubscribe_url"] = BASE + "/u/tok.en"
    for locale in LOCALES:
        rendered = render_email("revisit_care", locale, ctx, base_url=BASE)
        page = structure(rendered.html)
        assert BASE + "/u/tok.en" in page.hrefs
        assert BASE + "/u/tok.en" in rendered.text
        link_text = "退订" if locale == "zh-CN" else "Unsubscribe"
        assert re.search(rf'href="{re.escape(BASE)}/u/tok\.en"[^>]*>{link_text}</a>', rendered.html)


def test_care_mail_without_optional_values_still_reads_well() -> None:
    ctx = sample("revisit_care") | {
        "last_issue": None,
        "last_contact_date": None,
        "feedback_url": None,
        "manager_phone": None,
    }
    for locale in LOCALES:
        rendered = render_email("revisit_care", locale, ctx, base_url=BASE)
        assert "None" not in rendered.text + rendered.html
        assert len(structure(rendered.html).hrefs) == 1  # only the unsubscribe link is left


def test_care_mail_offers_both_answers_as_links_to_the_feedback_page() -> None:
    ctx = sample("revisit_care") | {"feedback_url": BASE + "/f/tok.en"}
    for locale in LOCALES:
        rendered = render_email("revisit_care", locale, ctx, base_url=BASE)
        hrefs = structure(rendered.html).hrefs
        assert BASE + "/f/tok.en?answer=solved" in hrefs
        assert BASE + "/f/tok.en?answer=not_solved" in hrefs
        assert BASE + "/f/tok.en" in rendered.text


def test_care_mail_without_an_issue_offers_one_please_call_me_button() -> None:
    ctx = sample("revisit_care") | {"last_issue": None, "feedback_url": BASE + "/f/tok.en"}
    for locale in LOCALES:
        rendered = render_email("revisit_care", locale, ctx, base_url=BASE)
        feedback = [h for h in structure(rendered.html).hrefs if "/f/" in h]
        assert feedback == [BASE + "/f/tok.en?answer=call_me"]
        assert "solved" not in rendered.text + rendered.html


@pytest.mark.parametrize(
    ("locale", "issue_words", "thanks_words"),
    [("zh-CN", "解决了吗", "有什么可以帮您的吗"), ("en", "was your issue solved", "help with")],
)
def test_care_subject_and_body_ask_the_same_question(
    locale: str, issue_words: str, thanks_words: str
) -> None:
    with_issue = render_email("revisit_care", locale, sample("revisit_care"), base_url=BASE)
    thanks = render_email(
        "revisit_care", locale, sample("revisit_care") | {"last_issue": None}, base_url=BASE
    )
    assert issue_words in with_issue.subject and thanks_words not in with_issue.subject
    assert thanks_words in thanks.subject and issue_words not in thanks.subject
    assert thanks_words.lower() in thanks.text.lower()
    assert "解决" not in thanks.subject + thanks.text or locale == "en"


def test_chinese_names_read_without_stray_spaces() -> None:
    ctx = sample("revisit_care") | {"customer_name": "张伟"}
    rendered = render_email("revisit_care", "zh-CN", ctx, base_url=BASE)
    assert "尊敬的张伟：" in rendered.text and "尊敬的张伟：" in rendered.html
    assert "尊敬的 " not in rendered.text + rendered.html


def test_staff_mail_needs_no_unsubscribe_url() -> None:
    assert "unsubscribe_url" not in required_variables("revisit_digest")
    assert "unsubscribe_url" in required_variables("revisit_care")
    assert get_kind("revisit_care").delivery_keys == {"unsubscribe_url", "feedback_url"}
    assert get_kind("revisit_digest").delivery_keys == frozenset()


# ------------------------------------------------------------------ locales and errors


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ("zh-CN", "zh-CN"),
        ("zh_cn", "zh-CN"),
        ("zh-TW", "zh-CN"),
        ("en", "en"),
        ("EN-us", "en"),
        ("en_GB", "en"),
        ("fr", "zh-CN"),
        ("", "zh-CN"),
        (None, "zh-CN"),
    ],
)
def test_locale_resolution_falls_back_to_zh_cn(asked: str | None, expected: str) -> None:
    assert resolve_locale(asked) == expected


def test_unknown_locale_renders_the_zh_cn_templates() -> None:
    ctx = sample("revisit_care")
    assert render_email("revisit_care", "fr-FR", ctx) == render_email("revisit_care", "zh-CN", ctx)


def test_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(UnknownEmailKind, match="revisit_digest"):
        render_email("no_such_kind", "en", {})


@pytest.mark.parametrize(("kind", "locale"), CASES)
def test_each_missing_top_level_variable_is_named(kind: str, locale: str) -> None:
    for variable in sorted(required_variables(kind, locale)):
        ctx = sample(kind)
        del ctx[variable]
        with pytest.raises(TemplateContextError) as err:
            render_email(kind, locale, ctx)
        assert err.value.variable == variable
        assert repr(variable) in str(err.value)


@pytest.mark.parametrize("kind", ["revisit_digest", "revisit_escalation"])
@pytest.mark.parametrize("key", ["outcome_url", "overdue_days", "needs_reassignment"])
def test_a_missing_item_key_is_named(kind: str, key: str) -> None:
    ctx = sample(kind)
    del ctx["items"][-1][key]
    with pytest.raises(TemplateContextError) as err:
        render_email(kind, "en", ctx)
    assert err.value.variable == key


# ------------------------------------------------------------------ hostile input


@pytest.mark.parametrize(("kind", "locale"), CASES)
@pytest.mark.parametrize("hostile", HOSTILE)
def test_customer_text_never_becomes_markup_or_a_link(kind: str, locale: str, hostile: str) -> None:
    reference = structure(render_email(kind, locale, sample(kind), base_url=BASE).html)
    rendered = render_email(kind, locale, with_customer_text(kind, hostile), base_url=BASE)
    page = structure(rendered.html)
    assert page.tags == reference.tags  # same elements, same attributes: nothing injected
    assert page.hrefs == reference.hrefs
    assert "<script" not in rendered.html.lower()
    assert not any(attr.startswith("on") for _, attrs in page.tags for attr in attrs)
    visible = "".join(page.text)
    assert hostile.splitlines()[0] in visible  # shown as text (escaped in the source)
    # Every subject carries a customer-controlled field; it arrives on one clean line.
    assert clean_subject(hostile) in rendered.subject
    assert "\r" not in rendered.subject and "\n" not in rendered.subject


def test_subject_and_text_are_not_html_escaped() -> None:
    ctx = sample("revisit_care") | {"customer_name": "A & B <Ltd>", "last_issue": '"quoted"'}
    rendered = render_email("revisit_care", "en", ctx, base_url=BASE)
    assert rendered.subject.startswith("A & B <Ltd>,")
    assert "A & B <Ltd>" in rendered.text and '"quoted"' in rendered.text
    assert "A &amp; B &lt;Ltd&gt;" in rendered.html and "&#34;quoted&#34;" in rendered.html


def test_a_crlf_name_cannot_break_the_subject_line() -> None:
    ctx = sample("revisit_care") | {"customer_name": "Eve\r\nBcc: x@evil.test\u2028\x00"}
    rendered = render_email("revisit_care", "en", ctx, base_url=BASE)
    assert rendered.subject.startswith("Eve Bcc: x@evil.test , thank you")
    assert not any(ch in rendered.subject for ch in "\r\n\x00\u2028")


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "http://evil.test/u/x",
        'https://x.test/" onmouseover="alert(1)',
        "data:text/html,hi",
    ],
)
def test_unsafe_urls_in_the_context_are_refused(url: str) -> None:
    care = sample("revisit_care") | {"feedback_url": url}
    with pytest.raises(UnsafeURL):
        render_email("revisit_care", "en", care, base_url=BASE)
    care = sample("revisit_care") | {"unsubscribe_url": url}
    with pytest.raises(UnsafeURL):
        render_email("revisit_care", "zh-CN", care, base_url=BASE)
    digest = sample("revisit_digest")
    digest["items"][1]["outcome_url"] = url
    with pytest.raises(UnsafeURL):
        render_email("revisit_digest", "en", digest, base_url=BASE)


def test_http_links_are_allowed_only_under_the_given_base_url() -> None:
    ctx = sample("revisit_care") | {"unsubscribe_url": "http://crm.local:8000/u/t"}
    rendered = render_email("revisit_care", "en", ctx, base_url="http://crm.local:8000")
    assert 'href="http://crm.local:8000/u/t"' in rendered.html
    with pytest.raises(UnsafeURL):
        render_email("revisit_care", "en", ctx, base_url="http://127.0.0.1:8000")


def test_company_name_defaults_and_can_be_overridden() -> None:
    ctx = sample("revisit_digest")
    assert "CRM Flows" in render_email("revisit_digest", "en", ctx).html
    named = render_email("revisit_digest", "en", ctx | {"company_name": "中石化 & Co"})
    assert "中石化 &amp; Co" in named.html and "中石化 & Co" in named.text


@settings(max_examples=150, deadline=None)
@given(name=st.text(max_size=60), issue=st.text(max_size=200))
def test_arbitrary_customer_text_is_inert(name: str, issue: str) -> None:
    reference = structure(render_email("revisit_care", "en", sample("revisit_care")).html)
    ctx = sample("revisit_care") | {"customer_name": name, "last_issue": issue or "x"}
    rendered = render_email("revisit_care", "en", ctx)
    page = structure(rendered.html)
    assert page.tags == reference.tags
    assert page.hrefs == reference.hrefs
    assert rendered.subject == clean_subject(rendered.subject)
    assert clean_subject(name) in rendered.subject


# ------------------------------------------------------------------ CSS inlining


def test_css_is_inlined_into_template_source_keeping_jinja_tags() -> None:
    source = (
        '<table class="t"><tbody>{% for x in xs %}<tr><td class="c" title="{{ x }}">'
        "{{ x }}</td></tr>{% endfor %}</tbody></table>"
    )
    out = inline_template_css(source, ".t { border: 0 } .c { color: red }")
    assert '<table class="t" style="border: 0;">' in out
    assert re.search(
        r'<td (?=[^>]*style="color: red;")(?=[^>]*title="\{\{ x \}\}")[^>]*>\{\{ x \}\}</td>', out
    )
    assert out.index("{% for x in xs %}") < out.index("<tr>") < out.index("{% endfor %}")


def test_css_inlining_refuses_to_reorder_template_tags() -> None:
    # Text directly inside <table> is hoisted out by the HTML parser (foster parenting) ...
    with pytest.raises(TemplateError, match="moved template tags"):
        inline_template_css("<table>{{ a }}<tr><td>x</td></tr></table>", ".x{color:red}")
    # ... and a loop around rows without an explicit <tbody> would end up half inside one.
    with pytest.raises(TemplateError, match="moved template tags"):
        inline_template_css(
            "<table>{% for r in rs %}<tr><td>x</td></tr>{% endfor %}</table>", ".x{color:red}"
        )


def test_html_environment_escapes_whatever_the_template_name() -> None:
    from tasks.mail.render import TEMPLATE_ROOT, _environments

    _, html_env = _environments(TEMPLATE_ROOT)
    for name in ("body.html", "body.html.j2", "x.txt", "noext"):
        template = html_env.from_string("{{ v }}")
        template.name = name
        assert html_env.autoescape(name) is True  # type: ignore[operator]
        assert template.render(v="<b>") == "&lt;b&gt;"


# ------------------------------------------------------------------ crm preview


def test_crm_preview_writes_html_and_text_for_every_kind(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer
    from typer.testing import CliRunner

    from crm_cli.commands import preview

    monkeypatch.setenv("CRM_VAR_DIR", str(tmp_path))
    app = typer.Typer()
    preview.register(app)
    app.command("noop")(lambda: None)  # a second command keeps "preview" a sub-command
    runner = CliRunner()

    result = runner.invoke(app, ["preview", "--all"])
    assert result.exit_code == 0, result.output
    for kind, locale in CASES:
        html = (tmp_path / "preview" / f"{kind}.{locale}.html").read_text(encoding="utf-8")
        text = (tmp_path / "preview" / f"{kind}.{locale}.txt").read_text(encoding="utf-8")
        subject = render_email(kind, locale, sample(kind)).subject
        assert html.startswith("<!DOCTYPE html>") and text.startswith(f"Subject: {subject}\n\n")
        assert subject in result.output
    assert result.output.count(".html") == len(CASES)

    result = runner.invoke(app, ["preview", "revisit_care", "--locale", "en-GB"])
    assert result.exit_code == 0, result.output
    assert result.output.count(".html") == 1 and "revisit_care.en.html" in result.output

    assert runner.invoke(app, ["preview", "nope"]).exit_code == 2
    assert runner.invoke(app, ["preview"]).exit_code == 2
    assert runner.invoke(app, ["preview", "revisit_care", "--all"]).exit_code == 2

    # The target report's chart: written beside the HTML, which shows it instead of cid:.
    for locale in ("zh-CN", "en"):
        html = (tmp_path / "preview" / f"target_report.{locale}.html").read_text(encoding="utf-8")
        image = tmp_path / "preview" / f"target_report.{locale}.0.png"
        assert image.read_bytes().startswith(b"\x89PNG")
        assert f'src="{image.name}"' in html and "cid:" not in html


@pytest.mark.parametrize(
    ("locale", "listed_all", "partly"),
    [
        (
            "zh-CN",
            "2 位客户已转由您负责：",
            "23 位客户已转由您负责（以下列出其中 2 位，其余 21 位未列出）：",
        ),
        (
            "en",
            "2 customers reassigned to you:",
            "23 customers reassigned to you (the first 2 listed, 21 more not listed):",
        ),
    ],
)
def test_digest_says_how_many_were_reassigned_beyond_those_it_names(
    locale: str, listed_all: str, partly: str
) -> None:
    """A leaver's whole book can be hundreds of customers: the digest names the first few and
    says how many it leaves out, never a silent cut."""
    ctx = sample("revisit_digest")
    ctx["reassigned"] = ctx["reassigned"] * 2
    ctx["reassigned_count"] = 2
    complete = render_email("revisit_digest", locale, ctx, base_url=BASE)
    ctx["reassigned_count"] = 23
    cut = render_email("revisit_digest", locale, ctx, base_url=BASE)
    for rendered in (complete, cut):
        assert rendered.text.count(ctx["reassigned"][0]["customer_name"]) >= 2
    assert listed_all in complete.text
    assert "已转由您负责（" not in complete.text and "reassigned to you (" not in complete.text
    assert partly in cut.text and partly in cut.html
