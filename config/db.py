"""The default database connection as django-tenants extends it: ``schema_name``, ``tenant``, ``set_tenant()``,
``set_schema_to_public()``. django-stubs types ``django.db.connection`` as Django's own wrapper, which has none of
them; code that reads or switches the schema imports the connection from here. Also :func:`transaction_with`,
:func:`local_settings`, :func:`native_cursor` and :func:`commit_meanwhile`."""

import select
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db import connection as _connection
from django.db.backends.utils import CursorDebugWrapper

connection: Any = _connection


def _set_local(values: dict[str, str], *, reading: bool = False) -> tuple[str, list[str]]:
    """The query that sets ``values`` local to the transaction (``set_config(..., true)``), reading the settings'
    values before when ``reading`` (they come first in its row)."""
    names = list(values)
    read = ["current_setting(%s)"] * len(names) if reading else []
    params = [*names] if reading else []
    params += [part for item in values.items() for part in item]
    return "SELECT " + ", ".join(read + ["set_config(%s, %s, true)"] * len(names)), params


@contextmanager
def transaction_with(using: str = DEFAULT_DB_ALIAS, **values: str) -> Iterator[None]:
    """A transaction whose queries run with these PostgreSQL settings (``jit="off"``...), set local in one query
    at its start: they end with it, whatever happens."""
    with transaction.atomic(using=using):
        with connections[using].cursor() as cursor:
            cursor.execute(*_set_local(values))
        yield


@contextmanager
def local_settings(using: str = DEFAULT_DB_ALIAS, **values: str) -> Iterator[None]:
    """PostgreSQL settings for the queries of the block (``enable_seqscan="off"``...), in the caller's
    transaction. They are set local: a transaction that fails or ends forgets them. After a block that ends well
    they are put back as they were, so the rest of the transaction runs as before (a block that is the whole
    transaction wants :func:`transaction_with`, one query)."""
    database = connections[using]
    assert database.in_atomic_block, "local settings last as long as a transaction: open one first"
    with database.cursor() as cursor:
        cursor.execute(*_set_local(values, reading=True))
        before = cursor.fetchone()[: len(values)]
    yield
    with database.cursor() as cursor:
        cursor.execute(*_set_local(dict(zip(values, before, strict=True))))


@contextmanager
def native_cursor(
    sql: str, params: Sequence[Any] | None = None, using: str = DEFAULT_DB_ALIAS
) -> Iterator[psycopg.Cursor]:
    """psycopg's own cursor on Django's connection, for one statement run through an API Django has none for
    (``cursor.copy(sql, params)``, ``cursor.stream(sql, params)``). The statement is logged as any query where Django
    logs them (``DEBUG``, tests), and its errors are Django's database errors: a duplicate key an
    ``IntegrityError``, a lost connection an ``OperationalError``."""
    database = connections[using]
    with database.cursor() as cursor, database.wrap_database_errors:
        logged = isinstance(cursor, CursorDebugWrapper)
        with cursor.debug_sql(sql, params, use_last_executed_query=True) if logged else nullcontext():
            yield cursor.cursor


@contextmanager
def commit_meanwhile(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """The last block of an outermost ``transaction.atomic``: the transaction's ``COMMIT`` is sent first, the block
    runs while PostgreSQL commits (checks the deferred constraints, writes and flushes the WAL), then the outcome is
    awaited. The atomic block's own commit then finds nothing left to do and runs the on-commit callbacks.

    The block must not use the connection. A commit that fails raises as Django's database errors do, at the end of
    the block, and the atomic block's rollback finds nothing left to do either. A transaction marked for rollback is
    not committed: the block runs, then the atomic block rolls it back. Inside an enclosing transaction (the
    atomic block is a savepoint's) there is no commit: the block just runs."""
    database = connections[using]
    assert database.in_atomic_block, "commit_meanwhile ends an atomic block"
    if len(database.atomic_blocks) > 1 or database.needs_rollback:
        yield
        return
    pgconn = database.connection.pgconn
    with database.wrap_database_errors:
        pgconn.send_query(b"COMMIT")
        while pgconn.flush():
            select.select([pgconn.socket], [pgconn.socket], [])
    try:
        yield
    finally:
        with database.wrap_database_errors:
            failed = None
            while True:
                pgconn.consume_input()
                while pgconn.is_busy():
                    select.select([pgconn.socket], [], [])
                    pgconn.consume_input()
                result = pgconn.get_result()
                if result is None:
                    break
                if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                    failed = psycopg.errors.error_from_result(result, encoding=database.connection.info.encoding)
            if failed is not None:
                raise failed
