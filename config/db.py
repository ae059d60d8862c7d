"""The default database connection as django-tenants extends it: ``schema_name``, ``tenant``, ``set_tenant()``,
``set_schema_to_public()``. django-stubs types ``django.db.connection`` as Django's own wrapper, which has none of
them; code that reads or switches the schema imports the connection from here."""

from typing import Any

from django.db import connection as _connection

connection: Any = _connection
