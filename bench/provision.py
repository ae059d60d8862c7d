"""Sign-up's provisioning step: claiming a standby schema from the pool against creating one directly.

Target: the pooled step under 200 ms median, whatever the number of tenant tables. Both are measured in the
same run on the same database: ``organization_create`` with a filled pool (what sign-up does) and with
``use_pool=False`` (a schema migrated on the spot, what an empty pool falls back to). The pool is refilled
between pooled samples outside the timing, as the Celery refill task does after each sign-up. The whole
sign-up (``user_register``: user, organization, owner membership, trial, default pipeline) is timed as well.

    python bench/provision.py [--samples 15] [--drop]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DB_NAME = "crm_bench_provision"


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"median {statistics.median(samples):7.1f} ms   p90 {p90:7.1f} ms   (n={len(samples)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database and exit")
    args = parser.parse_args()
    if args.drop:
        common.drop_database(DB_NAME)
        return

    common.ensure_database(DB_NAME)
    common.configure(DB_NAME)
    common.migrate()

    from django.db import connection

    from identity.models import User
    from identity.services import user_register
    from tenants.choices import OrganizationStatus
    from tenants.models import Organization
    from tenants.services import organization_create, organization_purge, standby_pool_refill

    created: list[Organization] = []

    def cleanup() -> None:
        for organization in created + list(Organization.objects.filter(status=OrganizationStatus.STANDBY)):
            if organization.status != OrganizationStatus.DELETED:
                organization.status = OrganizationStatus.DELETED
                organization.save(update_fields=["status"])
            organization_purge(organization=organization)
        User.objects.filter(email__endswith="@provision.bench.test").delete()

    try:
        from django.contrib.auth.hashers import make_password

        direct, pooled, signup, hashing = [], [], [], []
        for _ in range(args.samples):
            ms, organization = timed(lambda: organization_create(name="Direct", use_pool=False))
            direct.append(ms)
            created.append(organization)

            standby_pool_refill(size=1)  # what the refill task does between sign-ups, not timed
            ms, organization = timed(lambda: organization_create(name="Pooled", use_pool=True))
            assert organization.pk not in {o.pk for o in created}
            pooled.append(ms)
            created.append(organization)

            standby_pool_refill(size=1)
            email = f"{uuid.uuid4().hex[:12]}@provision.bench.test"
            ms, (_, organization) = timed(
                lambda email=email: user_register(
                    email=email,
                    password="Bench-Password-123",
                    first_name="Bench",
                    last_name="Signup",
                    organization_name="Signed Up",
                )
            )
            signup.append(ms)
            created.append(organization)
            hashing.append(timed(lambda: make_password("Bench-Password-123"))[0])

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", [created[0].schema_name]
            )
            tables = cursor.fetchone()[0]
        ratio = statistics.median(direct) / statistics.median(pooled)
        print(f"tenant tables per schema: {tables}")
        print(f"direct (schema migrated on the spot): {summary(direct)}")
        print(f"pooled (standby schema claimed):      {summary(pooled)}")
        print(f"whole sign-up, pooled:                {summary(signup)}")
        print(f"  of which hashing the password:      {summary(hashing)}")
        print(f"pooled is {ratio:.1f}x faster than direct")
        common.check("pooled provisioning median < 200 ms", statistics.median(pooled) < 200, summary(pooled).strip())
    finally:
        cleanup()
    common.finish()


if __name__ == "__main__":
    main()
