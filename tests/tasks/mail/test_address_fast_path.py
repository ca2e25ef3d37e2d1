"""The cheap path of ``validate_address`` must agree with the full validator wherever it answers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.mail.message import _fast_path, _full_validation

ATOM = st.text(alphabet="abcXYZ019.!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=20)
LABEL = st.text(alphabet="abcxyz019-", min_size=1, max_size=12)
NAMES = st.text(max_size=30)


@settings(max_examples=400)
@given(
    ATOM,
    st.lists(LABEL, min_size=1, max_size=3),
    st.sampled_from(["com", "test", "cn", "invalid", "local", "localhost", "arpa", "onion"]),
    NAMES,
)
def test_fast_path_agrees_with_full_validation(
    local: str, labels: list[str], tld: str, name: str
) -> None:
    email = f"{local}@{'.'.join(labels)}.{tld}"
    fast = _fast_path(email, name)
    if fast is not None:
        assert fast == _full_validation(email, name)


@given(st.emails(), NAMES)
def test_generated_emails(email: str, name: str) -> None:
    fast = _fast_path(email, name)
    if fast is not None:
        assert fast == _full_validation(email, name)


def test_fast_path_declines_what_it_cannot_decide() -> None:
    for email in (
        "a@x.test>\r\nRCPT TO:<e@evil.test>",
        "a..b@x.com",
        "田中@x.com",
        "a@x",
        "a@x.invalid",
        "a@b.localhost",
    ):
        assert _fast_path(email, "n") is None
    assert _fast_path("a@x.com", "Eve\r\nBcc: x@evil.test") is None
    assert _fast_path("Zhang.San@Example.COM", " 张  三 ") == ("Zhang.San@example.com", "张 三")
