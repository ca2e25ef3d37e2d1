"""All CRM tables. Importing this package registers every model on ``Base.metadata``."""

from crm_db.models.base import Base
from crm_db.models.care import (
    CareAlert,
    CareFeedback,
    Revisit,
    RevisitPolicy,
    SurveyCampaign,
    SurveyInvitation,
    SurveyLoopScore,
    SurveyPolicy,
    SurveyResponse,
    SurveyScore,
)
from crm_db.models.complaints import (
    Complaint,
    ComplaintEscalation,
    ComplaintEvent,
    ComplaintFeedbackRoute,
    SlaPolicy,
)
from crm_db.models.customers import (
    ConsentChange,
    ContactHistory,
    Customer,
    CustomerClassChange,
    CustomerOwnerChange,
    Transaction,
)
from crm_db.models.operations import (
    AddressFlagClearance,
    FlowRun,
    OutboxAttachment,
    OutboxMessage,
    PolicySetting,
    RelayQuota,
)
from crm_db.models.organisation import Branch, BusinessCalendar, CalendarDay, Region, Staff
from crm_db.models.targets import (
    ReconciliationRow,
    ReconciliationSnapshot,
    Target,
    TargetVersion,
    WeeklyForm,
)

__all__ = [
    "AddressFlagClearance",
    "Base",
    "Branch",
    "ConsentChange",
    "CustomerOwnerChange",
    "BusinessCalendar",
    "CareAlert",
    "CareFeedback",
    "CalendarDay",
    "Complaint",
    "ComplaintEscalation",
    "ComplaintEvent",
    "ComplaintFeedbackRoute",
    "ContactHistory",
    "Customer",
    "CustomerClassChange",
    "FlowRun",
    "OutboxAttachment",
    "OutboxMessage",
    "PolicySetting",
    "RelayQuota",
    "ReconciliationRow",
    "ReconciliationSnapshot",
    "Region",
    "Revisit",
    "RevisitPolicy",
    "SlaPolicy",
    "Staff",
    "SurveyCampaign",
    "SurveyInvitation",
    "SurveyPolicy",
    "SurveyResponse",
    "SurveyLoopScore",
    "SurveyScore",
    "Target",
    "TargetVersion",
    "Transaction",
    "WeeklyForm",
]
