"""``crm import customers``: the customer master data (one row per customer)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from crm_db.csv_import import fields
from crm_db.csv_import.errors import FieldError
from crm_db.csv_import.lookups import LookupName, Lookups
from crm_db.csv_import.spec import Column, KindSpec, RowChecker
from crm_db.enums import CardType

COLUMNS = (
    Column("external_id", True, "the customer's id in the source system (upsert key, ≤ 64 chars)"),
    Column("name", True, "≤ 200 characters, no line breaks or control characters"),
    Column(
        "email",
        False,
        "a valid address (syntax only, stored normalised; reserved domains such as .test are "
        "refused outside demo mode)",
    ),
    Column("phone", False, "5-20 digits; + ( ) - . and spaces allowed"),
    Column("locale", False, "zh-CN or en; empty = CRM_LOCALE"),
    Column("timezone", False, "an IANA zone such as Asia/Shanghai; empty = CRM_TIMEZONE"),
    Column("card_type", True, "personal, company or fleet"),
    Column("branch_code", True, "an existing branch code"),
    Column("account_manager_id", False, "external id of an active staff member"),
    Column("marketing_opt_out", False, "true/false, 1/0, yes/no; empty = false"),
    Column("survey_opt_out", False, "true/false, 1/0, yes/no; empty = false"),
    Column("first_card_on", True, "YYYY-MM-DD, the day the first card was issued"),
)


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    external_id: str
    name: str
    email: str | None
    phone: str | None
    locale: str
    timezone: str
    card_type: CardType
    branch_id: int
    account_manager_id: int | None
    marketing_opt_out: bool
    survey_opt_out: bool
    first_card_on: date

    def values(self) -> dict[str, Any]:
        return {
            "external_id": self.external_id,
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "locale": self.locale,
            "timezone": self.timezone,
            "card_type": self.card_type,
            "branch_id": self.branch_id,
            "account_manager_id": self.account_manager_id,
            "marketing_opt_out": self.marketing_opt_out,
            "survey_opt_out": self.survey_opt_out,
            "first_card_on": self.first_card_on,
        }


def validate_customer(
    row: Mapping[str, str], line: int, lookups: Lookups
) -> CustomerRecord | list[FieldError]:
    check = RowChecker(row, line)
    record = CustomerRecord(
        external_id=check.take("external_id", fields.identifier),
        name=check.take("name", lambda v: fields.text(v, max_length=200)),
        email=check.take(
            "email", lambda v: fields.email(v, allow_test_domain=lookups.allow_test_email_domain)
        ),
        phone=check.take("phone", fields.phone),
        locale=check.take("locale", lambda v: fields.locale(v, lookups.default_locale)),
        timezone=check.take("timezone", lambda v: fields.timezone(v, lookups.default_timezone)),
        card_type=check.take("card_type", lambda v: fields.choice(v, CardType)),
        branch_id=check.take(
            "branch_code", lambda v: fields.resolve(v, lookups.branches, "unknown branch code")
        ),
        account_manager_id=check.take(
            "account_manager_id", lambda v: fields.active_staff(v, lookups.staff, "account manager")
        ),
        marketing_opt_out=check.take("marketing_opt_out", fields.boolean),
        survey_opt_out=check.take("survey_opt_out", fields.boolean),
        first_card_on=check.take("first_card_on", fields.iso_date),
    )
    return check.errors or record


SPEC: KindSpec[CustomerRecord] = KindSpec(
    name="customers",
    columns=COLUMNS,
    key_columns=("external_id",),
    needs=frozenset({LookupName.BRANCHES, LookupName.STAFF}),
    validate=validate_customer,
)
