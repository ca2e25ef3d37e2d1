"""How many worker processes a run may use, from an environment variable
(``CRM_BUILD_WORKERS``, delivery's build workers in ``tasks.mail.build``): ``auto``/empty, ``0``
or a number."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def process_count(env: str, *, auto: int, maximum: int) -> int:
    """The count ``env`` asks for: ``auto`` when unset, empty or ``auto``; a number clamped to
    ``0..maximum``; anything else is logged and means none (in-process is always correct)."""
    raw = os.environ.get(env, "auto").strip().lower()
    if raw in ("", "auto"):
        return auto
    try:
        return max(0, min(int(raw), maximum))
    except ValueError:
        log.warning("ignoring %s=%r (not a number): no worker processes", env, raw)
        return 0
