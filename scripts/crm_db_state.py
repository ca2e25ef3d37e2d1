"""Print ``empty`` when the CRM database has no customers yet, else ``<N> customers``.

``make demo`` seeds demo data only into an empty database (``crm demo seed`` refuses a
non-empty one). Exits non-zero when the database cannot be read or has no schema, so the demo
stops there instead of seeding into the wrong place. Run after ``crm db upgrade``.
"""

from __future__ import annotations

import sys

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from crm_db.models import Customer
from crm_db.session import make_engine


def main() -> int:
    engine = make_engine(create=False)
    try:
        with engine.connect() as connection:
            customers = connection.execute(select(func.count()).select_from(Customer)).scalar_one()
    except SQLAlchemyError as exc:
        sys.stderr.write(f"error: cannot read the CRM database: {type(exc).__name__}\n")
        return 2
    finally:
        engine.dispose()
    sys.stdout.write("empty\n" if customers == 0 else f"{customers} customers\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
