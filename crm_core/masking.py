"""Mask personal data before it reaches logs, artifacts or error summaries."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9\-]{1,2})[A-Za-z0-9.\-]*")
_PHONE = re.compile(r"(?<!\d)(\+?\d[\d \-]{5,}\d)(?!\d)")


def mask_email(address: str | None) -> str:
    """``zhang.san@example.com`` -> ``z***@ex***``; keeps enough to tell two addresses apart."""
    if not address:
        return ""
    local, _, domain = address.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain[:2]}***"


def mask_phone(phone: str | None) -> str:
    """``13812345678`` -> ``*******5678``."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def mask_text(text: str) -> str:
    """Mask every email address and phone-like number inside free text (e.g. an SMTP error)."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}***", text)
    return _PHONE.sub(lambda m: mask_phone(m.group(1)), text)
