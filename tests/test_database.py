"""The database backend (``config.postgresql``): django-tenants' backend, with psycopg's own timestamp loader; and
``config.db.commit_meanwhile``."""

import datetime
import zoneinfo

import psycopg
import pytest
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone
from psycopg.postgres import types
from psycopg.pq import Format, TransactionStatus

from config.db import commit_meanwhile
from crm.models import Contact

from .conftest import committed

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


# --- config.db.commit_meanwhile, on connections that commit (outside the test's transaction) ---


def _temporary_tables():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE parent (id int PRIMARY KEY)")
        cursor.execute("CREATE TEMPORARY TABLE child (parent int REFERENCES parent DEFERRABLE INITIALLY DEFERRED)")


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def _status():
    return connection.connection.pgconn.transaction_status


def test_commit_meanwhile_runs_its_block_while_the_commit_is_on_the_way():
    def run():
        _temporary_tables()
        seen, hooks = {}, []
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO parent VALUES (1)")
            transaction.on_commit(lambda: hooks.append("after"))
            with commit_meanwhile():
                seen.update(status=_status(), hooks=list(hooks))
            seen["after_block"] = _status()
        return seen, hooks, _count("parent")

    seen, hooks, parents = committed(run)

    assert seen == {"status": TransactionStatus.ACTIVE, "hooks": [], "after_block": TransactionStatus.IDLE}
    assert hooks == ["after"]
    assert parents == 1


def test_a_commit_that_fails_raises_after_the_block_and_keeps_nothing():
    ran, hooks = [], []

    def dangling_child():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO parent VALUES (1)")
                cursor.execute("INSERT INTO child VALUES (2)")  # checked at commit
            transaction.on_commit(lambda: hooks.append("after"))
            with commit_meanwhile():
                ran.append(_status())

    def run():
        _temporary_tables()
        with pytest.raises(IntegrityError, match="parent"):
            dangling_child()
        return _count("parent"), _count("child")

    assert committed(run) == (0, 0)
    assert (ran, hooks) == ([TransactionStatus.ACTIVE], [])


def test_what_the_block_raises_comes_out_after_the_commit():
    def failing_block():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO parent VALUES (1)")
            with commit_meanwhile():
                raise ZeroDivisionError

    def run():
        _temporary_tables()
        with pytest.raises(ZeroDivisionError):
            failing_block()
        return _count("parent")

    assert committed(run) == 1  # the COMMIT was sent before the block ran


def test_commit_meanwhile_commits_nothing_in_a_transaction_marked_for_rollback_or_inside_another():
    def run():
        _temporary_tables()
        seen = []
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO parent VALUES (1)")
            transaction.set_rollback(True)
            with commit_meanwhile():
                seen.append(_status())
        with transaction.atomic():
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("INSERT INTO parent VALUES (2)")
                with commit_meanwhile():
                    seen.append(_status())
            transaction.set_rollback(True)
        return seen, _count("parent")

    assert committed(run) == ([TransactionStatus.INTRANS, TransactionStatus.INTRANS], 0)


def test_a_connection_lost_while_committing_raises_operational_error_and_keeps_nothing():
    """The server goes away while the block runs (a deferred trigger holds the commit): Django's
    ``OperationalError``, which the import task retries, and nothing committed."""

    def create_probe():
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE commit_probe (id int)")
            cursor.execute(
                "CREATE FUNCTION commit_probe_wait() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$"
            )
            cursor.execute(
                "CREATE CONSTRAINT TRIGGER commit_probe_wait AFTER INSERT ON commit_probe "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION commit_probe_wait()"
            )

    def terminated_while_committing():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO commit_probe VALUES (1)")
                cursor.execute("SELECT pg_backend_pid()")
                (pid,) = cursor.fetchone()
            with commit_meanwhile():
                with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
                    other.execute("SELECT pg_terminate_backend(%s)", [pid])

    def run():
        create_probe()
        with pytest.raises(OperationalError):
            terminated_while_committing()
        return _count("commit_probe")  # on a new connection

    def drop_probe():
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS commit_probe")
            cursor.execute("DROP FUNCTION IF EXISTS commit_probe_wait()")

    try:
        assert committed(run) == 0
    finally:
        committed(drop_probe)
