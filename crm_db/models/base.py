"""Declarative base with a naming convention, so constraints have stable names in migrations."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Enum, MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def str_enum(enum_cls: type[StrEnum], column: str, length: int | None = None) -> Enum:
    """A portable enum column: VARCHAR plus a named CHECK constraint (no native PG enum types,
    so adding a value is a plain migration on both backends). ``length`` leaves room for
    values to come (default: the longest value)."""
    return Enum(
        enum_cls,
        name=column,  # the CHECK constraint is named after its column
        native_enum=False,
        create_constraint=True,
        length=length or max(len(m.value) for m in enum_cls),
        values_callable=lambda cls: [m.value for m in cls],
        validate_strings=True,
    )
