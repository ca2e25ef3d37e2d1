"""Print what ``make demo`` did: customers by class, revisits, survey waves, outbox by status,
captured mail.

Reads the CRM database named by the settings and the mail capture folder; writes nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from sqlalchemy import func, select

from crm_core.paths import var_dir
from crm_db.models import (
    CareAlert,
    Customer,
    FlowRun,
    OutboxMessage,
    Revisit,
    SurveyCampaign,
    SurveyInvitation,
    SurveyLoopScore,
    SurveyScore,
)
from crm_db.session import make_engine


def _pairs(rows: Iterable[tuple[object, int]]) -> str:
    return ", ".join(f"{key or '-'}={n}" for key, n in sorted(rows, key=lambda r: str(r[0])))


def main() -> int:
    engine = make_engine(create=False)
    with engine.connect() as conn:
        classes = conn.execute(
            select(Customer.abc_class, func.count()).group_by(Customer.abc_class)
        ).tuples()
        revisits = conn.execute(
            select(Revisit.status, func.count()).group_by(Revisit.status)
        ).tuples()
        outbox = conn.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        ).tuples()
        kinds = conn.execute(
            select(OutboxMessage.kind, func.count()).group_by(OutboxMessage.kind)
        ).tuples()
        # The periodic waves by class (nps:2026Q4:A ...) and the post-complaint campaigns.
        waves = conn.execute(
            select(SurveyCampaign.code, func.count(SurveyInvitation.id))
            .join(SurveyInvitation, SurveyInvitation.campaign_id == SurveyCampaign.id)
            .where(SurveyInvitation.run_id.is_not(None))
            .group_by(SurveyCampaign.code)
        ).tuples()
        alerts = conn.execute(
            select(CareAlert.kind, func.count()).group_by(CareAlert.kind)
        ).tuples()
        # The company's stored scores and loop of the latest quarter (after demo answers).
        scores = conn.execute(
            select(SurveyScore.period, SurveyScore.kind, SurveyScore.score, SurveyScore.responses)
            .where(SurveyScore.level == "company")
            .order_by(SurveyScore.period.desc(), SurveyScore.kind)
            .limit(2)
        ).all()
        loop = conn.execute(
            select(
                SurveyLoopScore.period,
                SurveyLoopScore.alerts,
                SurveyLoopScore.followed_up,
                SurveyLoopScore.told,
                SurveyLoopScore.next_answers,
            )
            .where(SurveyLoopScore.level == "company")
            .order_by(SurveyLoopScore.period.desc())
            .limit(1)
        ).one_or_none()
        runs = conn.execute(select(FlowRun.flow_name, FlowRun.status).order_by(FlowRun.id)).tuples()
        print(f"  customers by class   {_pairs(classes)}")
        print(f"  revisits by status   {_pairs(revisits)}")
        print(f"  survey invitations   {_pairs(waves) or '-'} (this demo's runs, by wave)")
        print(f"  care alerts by kind  {_pairs(alerts) or '-'}")
        for period, kind, score, responses in scores:
            shown = "no answers" if score is None else f"{score:.1f}"
            print(f"  company {kind.upper():<4} {period} {shown} ({responses} answers)")
        if loop is not None:
            print(
                f"  detractor loop {loop.period} {loop.alerts} alerts, followed up in time "
                f"{loop.followed_up}, told the result {loop.told}, answered again "
                f"{loop.next_answers}"
            )
        print(f"  emails by kind       {_pairs(kinds)}")
        print(f"  emails by status     {_pairs(outbox)}")
        print(f"  flow runs (ledger)   {', '.join(f'{n}:{s}' for n, s in runs)}")
    engine.dispose()
    mail = var_dir() / "mail"
    captured = len(list(mail.glob("*.eml"))) if mail.exists() else 0
    print(f"  captured emails      {captured} in {mail}/ (open {mail / 'index.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
