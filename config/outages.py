"""What counts as "PostgreSQL is unreachable": the API answers 503 with ``Retry-After`` instead of 500, and a
tenant task that cannot reach its organization's schema is retried instead of failed.

Only failures of the connection itself count (refused, dropped, the server shutting down or starting up, no
connection slot left); a server that answers with an error (a timeout, a deadlock, a constraint) is not an
outage and keeps its own handling.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

# Seconds a client is asked to wait before retrying while the database is unreachable.
RETRY_AFTER_SECONDS = 5
# admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections; class 08 is "connection exception".
UNREACHABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def database_unreachable(exc: BaseException | None) -> bool:
    if isinstance(exc, InterfaceError):  # the connection is already closed
        return True
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)  # psycopg's error; None when no server answered
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in UNREACHABLE_SQLSTATES
