"""django-tenants' PostgreSQL backend (``ENGINE = "config.postgresql"``), with psycopg's own timestamp loader.

Django loads every ``timestamp with time zone`` through a Python subclass of psycopg's loader, only to swap the
value's zone for Django's object for the same zone: about 4 µs a value, against well under one for psycopg's
loader (compiled). A list of 50 records with four timestamps each spent a millisecond there, a board of 120 cards
two. With ``USE_TZ`` and the connection in UTC (how Django sets it), psycopg's loader gives the same instants in
UTC (``zoneinfo.ZoneInfo("UTC")`` rather than ``datetime.timezone.utc``, which compare and render alike), so each
cursor gets it instead of Django's (``tests/test_database.py`` holds both equal).
"""

from django.conf import settings
from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper
from psycopg.types.datetime import TimestamptzLoader


class DatabaseWrapper(TenantDatabaseWrapper):
    def create_cursor(self, name=None):
        cursor = super().create_cursor(name)
        if settings.USE_TZ and self.timezone_name == "UTC":
            cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        return cursor
