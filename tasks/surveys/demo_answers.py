"""``crm demo answers`` (IO): answer a share of the open survey invitations with the demo's
seeded answers (``tasks/surveys/rules/demo_answers.py``), each through the answer page's own
recording code (``record_link_answer``: source ``web``, the link's checks, one transaction per
answer), so the next surveys run scores them and raises the loop's alerts as it would for
customers clicking their links.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select

from crm_db.enums import InvitationStatus, SurveyKind
from crm_db.models import SurveyInvitation, SurveyResponse
from tasks.surveys.answers import Outcome, record_link_answer
from tasks.surveys.rules.demo_answers import demo_answer
from tasks.surveys.rules.scores import nps_band

CHUNK = 1_000


@dataclass
class DemoAnswers:
    open: int = 0
    answered: Counter[str] = field(default_factory=Counter)  # by kind
    bands: Counter[str] = field(default_factory=Counter)  # NPS bands, CSAT low (1-2)
    refused: int = 0

    def line(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.answered.items())) or "none"
        bands = ", ".join(f"{k} {n}" for k, n in sorted(self.bands.items())) or "none"
        return (
            f"answered {sum(self.answered.values())} of {self.open} open invitations "
            f"({kinds}; {bands}); refused {self.refused}"
        )


def answer_open_invitations(
    engine: Engine, *, share: float, seed: int, now: datetime
) -> DemoAnswers:
    """Answer ``share`` of the invitations whose link takes an answer at ``now`` (sent or
    reminded, not expired, unanswered), by id in chunks."""
    result = DemoAnswers()
    after = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(SurveyInvitation.id, SurveyInvitation.kind)
                .outerjoin(SurveyResponse, SurveyResponse.invitation_id == SurveyInvitation.id)
                .where(
                    SurveyInvitation.id > after,
                    SurveyInvitation.status.in_([InvitationStatus.SENT, InvitationStatus.REMINDED]),
                    SurveyInvitation.expires_at > now,
                    SurveyResponse.id.is_(None),
                )
                .order_by(SurveyInvitation.id)
                .limit(CHUNK)
            ).all()
        for invitation_id, kind_value in rows:
            kind = SurveyKind(kind_value)
            result.open += 1
            answer = demo_answer(seed, invitation_id, kind, share)
            if answer is None:
                continue
            recorded = record_link_answer(engine, invitation_id, answer, now=now)
            if recorded.outcome is not Outcome.RECORDED:
                result.refused += 1
                continue
            result.answered[kind.value] += 1
            if kind is SurveyKind.NPS:
                result.bands[nps_band(answer.score).value] += 1
            elif answer.score <= 2:
                result.bands["csat_low"] += 1
        if len(rows) < CHUNK:
            return result
        after = rows[-1][0]


__all__ = ["DemoAnswers", "answer_open_invitations"]
