"""The default database connection as django-tenants extends it: ``schema_name``, ``tenant``, ``set_tenant()``,
``set_schema_to_public()``. django-stubs types ``django.db.connection`` as Django's own wrapper, which has none of
them; code that reads or switches the schema imports the connection from here. Also :func:`local_settings`."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db import connection as _connection

connection: Any = _connection


@contextmanager
def local_settings(using: str = DEFAULT_DB_ALIAS, **values: str) -> Iterator[None]:
    """PostgreSQL settings for the queries of the block (``jit="off"``, ``enable_seqscan="off"``...), in the
    caller's transaction. They are set local: a transaction that fails or ends forgets them. After a block that
    ends well they are put back as they were, so the rest of the transaction runs as before."""
    database = connections[using]
    assert database.in_atomic_block, "local settings last as long as a transaction: open one first"
    names = list(values)
    with database.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join(["current_setting(%s)"] * len(names) + ["set_config(%s, %s, true)"] * len(names)),
            [*names, *(part for item in values.items() for part in item)],
        )
        before = cursor.fetchone()[: len(names)]
    yield
    with database.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(names)),
            [part for item in zip(names, before, strict=True) for part in item],
        )
