"""The database backend (``config.postgresql``): django-tenants' backend, with psycopg's own timestamp loader."""

import datetime
import zoneinfo

import pytest
from django.db import connection
from django.utils import timezone
from psycopg.postgres import types
from psycopg.pq import Format

from crm.models import Contact

pytestmark = pytest.mark.django_db


def test_cursors_load_timestamps_with_psycopgs_own_loader():
    oid = types["timestamptz"].oid
    with connection.cursor() as cursor:
        loader = cursor.cursor.adapters.get_loader(oid, Format.TEXT)
        assert loader.__module__.startswith(("psycopg_binary", "psycopg_c", "psycopg.types"))
        assert not loader.__module__.startswith("django")


def test_timestamps_read_back_as_the_same_instants_in_utc(org_a, in_tenant):
    written = datetime.datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    with in_tenant(org_a):
        contact = Contact.objects.create(first_name="Ada")
        Contact.objects.filter(pk=contact.pk).update(updated_at=written)
        read = Contact.objects.values_list("updated_at", flat=True).get(pk=contact.pk)
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s::timestamptz, '2020-02-29 23:59:59.999999-05'::timestamptz", [written])
            raw, literal = cursor.fetchone()

    for value in (read, raw):
        assert value == written
        assert timezone.is_aware(value)
        assert value.utcoffset() == datetime.timedelta(0)
        assert value.isoformat() == "2026-03-29T00:30:00.123456+00:00"
    assert literal == datetime.datetime(2020, 3, 1, 4, 59, 59, 999999, tzinfo=datetime.UTC)
    with timezone.override("Pacific/Auckland"):
        assert timezone.localtime(read).isoformat() == "2026-03-29T13:30:00.123456+13:00"
