"""Closed vocabularies of the CRM, stored as short strings with CHECK constraints."""

from __future__ import annotations

from enum import StrEnum


class StaffRole(StrEnum):
    ACCOUNT_MANAGER = "account_manager"
    BRANCH_MANAGER = "branch_manager"
    REGION_MANAGER = "region_manager"
    MARKETING_ADMIN = "marketing_admin"
    EXECUTIVE = "executive"
    PRODUCT_DEPARTMENT = "product_department"
    OPERATIONS_DEPARTMENT = "operations_department"


class CardType(StrEnum):
    PERSONAL = "personal"
    COMPANY = "company"
    FLEET = "fleet"


class AbcClass(StrEnum):
    A = "A"
    B = "B"
    C = "C"


class ValueQuadrant(StrEnum):
    HIGH = "high"  # high current, high potential
    SECONDARY = "secondary"  # high current, low potential
    POTENTIAL = "potential"  # low current, high potential
    LOW = "low"


class TransactionKind(StrEnum):
    RECHARGE = "recharge"
    PURCHASE = "purchase"


class ContactChannel(StrEnum):
    VISIT = "visit"
    PHONE = "phone"
    EMAIL = "email"
    SURVEY = "survey"


class ContactOutcome(StrEnum):
    COMPLETED = "completed"
    NO_ANSWER = "no_answer"
    RESCHEDULED = "rescheduled"
    ISSUE_RAISED = "issue_raised"


# Contact outcomes that mean the customer was reached: they close a revisit and restart the
# cadence (no_answer and rescheduled are attempts). One rule for the CLI, web page and import.
REACHED_OUTCOMES = frozenset({ContactOutcome.COMPLETED, ContactOutcome.ISSUE_RAISED})


class RevisitStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class CareAlertKind(StrEnum):
    """Why a care alert was raised (a survey answer's low score, or the churn early warning)."""

    DETRACTOR = "detractor"  # NPS 0-6
    LOW_CSAT = "low_csat"  # CSAT 1-2
    LOW_RATING = "low_rating"  # a product or service rating 1-2
    CHURN = "churn"  # trailing-90-day spend fell sharply (流失预警)


class SurveyKind(StrEnum):
    NPS = "nps"
    CSAT = "csat"


class SurveyTrigger(StrEnum):
    PERIODIC = "periodic"
    POST_COMPLAINT = "post_complaint"


class SurveyPeriod(StrEnum):
    """How often a class gets the periodic NPS survey (``survey_policies.period``)."""

    QUARTER = "quarter"
    HALF_YEAR = "half_year"
    YEAR = "year"


class InvitationStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    REMINDED = "reminded"
    RESPONDED = "responded"
    EXPIRED = "expired"


class ResponseSource(StrEnum):
    """How a survey answer reached us: the answer page, or typed in from a call or a form."""

    WEB = "web"
    PHONE = "phone"
    PAPER = "paper"
    IMPORT = "import"


class ComplaintStatus(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    RESOLVED = "resolved"
    VERIFIED = "verified"
    CLOSED = "closed"


class ComplaintEventKind(StrEnum):
    """What a complaint event records: the events are the one source of truth of a complaint."""

    TRANSITION = "transition"  # a status change (from_status -> to_status)
    ASSIGN = "assign"  # a new assignee (``assignee_id``)
    ESCALATION = "escalation"  # a ladder tier notified (``detail_key`` e.g. resolution:branch)
    RECOMPUTE = "recompute"  # targets re-copied from an edited policy
    NOTE = "note"


class ComplaintSource(StrEnum):
    """Where a complaint came from."""

    CLI = "cli"
    IMPORT = "import"
    CARE_FEEDBACK = "care_feedback"
    SURVEY = "survey"
    DEMO = "demo"


class EventSource(StrEnum):
    """Who wrote a complaint event."""

    CLI = "cli"
    IMPORT = "import"
    WEB = "web"
    FLOW = "flow"
    DEMO = "demo"


class Severity(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


class EscalationTier(StrEnum):
    WARNING = "warning"
    ASSIGNEE = "assignee"
    BRANCH = "branch"
    REGION = "region"
    EXECUTIVE = "executive"


class SlaTarget(StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


class TargetScope(StrEnum):
    """The level a target or a reconciliation row is for; ``company`` has ``scope_id`` 0."""

    COMPANY = "company"
    REGION = "region"
    BRANCH = "branch"
    STAFF = "staff"


class TargetMetric(StrEnum):
    """Target metrics; values are integers in base units (fen for money, millilitres for volume)."""

    NEW_CUSTOMERS_PERSONAL = "new_customers_personal"
    NEW_CUSTOMERS_COMPANY = "new_customers_company"
    NEW_CUSTOMERS_FLEET = "new_customers_fleet"
    VOLUME_ML = "volume_ml"  # fuel sold (purchases)
    REVENUE_FEN = "revenue_fen"  # purchase amounts
    RECHARGE_FEN = "recharge_fen"  # card recharges
    # The first recharge of each card issued in the period (the seeds' award metric).
    FIRST_RECHARGE_FEN = "first_recharge_fen"
    # Fuel bought by customers whose first card was issued this calendar year.
    NEW_CUSTOMER_VOLUME_ML = "new_customer_volume_ml"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
