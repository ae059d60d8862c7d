"""Password hashing: the candidate Argon2id parameters, and what sign-in and sign-up cost before and after.

Prints the time of one hash for each candidate (Argon2id at several memory/time/lane costs, and PBKDF2-SHA256 at
Django's 1,000,000 iterations, the previous default), then the median of sign-in (``POST /api/v1/auth/token/``)
and sign-up (``POST /api/v1/auth/register/``, a standby schema ready as the pool keeps one) through the API, in
process, with the previous hasher list (PBKDF2 first) and the production one (Argon2id first), in the same run.

Targets: the production hash under 200 ms median on the machine, and sign-in with it no slower than with PBKDF2.

    python bench/passwords.py [--samples 15] [--drop]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DB_NAME = "crm_bench_passwords"
BEFORE = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
CANDIDATES = [  # (time cost, memory KiB, lanes)
    (2, 102400, 8),  # Django's Argon2PasswordHasher
    (3, 65536, 4),  # RFC 9106's second recommendation
    (3, 65536, 1),
    (2, 65536, 1),
    (2, 47104, 1),  # chosen: OWASP's 46 MiB profile, twice its passes
    (1, 47104, 1),  # OWASP's 46 MiB profile
    (2, 19456, 1),  # OWASP's 19 MiB profile
]


def median_ms(fn, samples: int) -> float:
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def candidates(samples: int) -> float:
    from argon2 import low_level

    from identity.hashers import Argon2idPasswordHasher as chosen

    password, salt = b"Bench-Password-123", os.urandom(16)
    print(f"{'one hash (median of ' + str(samples) + ')':44} {'ms':>8}")
    pbkdf2 = median_ms(lambda: hashlib.pbkdf2_hmac("sha256", password, salt, 1_000_000), samples)
    print(f"{'PBKDF2-SHA256, 1,000,000 iterations':44} {pbkdf2:8.1f}")
    production = 0.0
    for time_cost, memory, lanes in CANDIDATES:
        ms = median_ms(
            lambda t=time_cost, m=memory, p=lanes: low_level.hash_secret(
                password, salt, time_cost=t, memory_cost=m, parallelism=p, hash_len=32, type=low_level.Type.ID
            ),
            samples,
        )
        mark = (time_cost, memory, lanes) == (chosen.time_cost, chosen.memory_cost, chosen.parallelism)
        production = ms if mark else production
        label = f"Argon2id t={time_cost} m={memory // 1024} MiB p={lanes}" + ("  <- production" if mark else "")
        print(f"{label:44} {ms:8.1f}")
    return production


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database and exit")
    args = parser.parse_args()
    if args.drop:
        common.drop_database(DB_NAME)
        return

    common.ensure_database(DB_NAME)
    common.configure(DB_NAME, extra={"THROTTLE_AUTH_RATE": "100000/min"})
    common.migrate()
    print(common.machine_load())

    from django.conf import settings
    from django.test import Client, override_settings

    from identity.models import User
    from tenants.choices import OrganizationStatus
    from tenants.models import Organization
    from tenants.services import organization_purge, standby_pool_refill

    production_hash = candidates(args.samples)
    client = Client()
    email = f"signin-{uuid.uuid4().hex[:8]}@passwords.bench.test"
    figures: dict[str, dict[str, float]] = {}
    try:
        for label, hashers in (
            ("before (PBKDF2 first)", BEFORE),
            ("after (Argon2id first)", settings.PASSWORD_HASHERS),
        ):
            with override_settings(PASSWORD_HASHERS=hashers):
                User.objects.filter(email=email).delete()
                User.objects.create_user(email=email, password=common.PASSWORD)

                def sign_in() -> None:
                    body = {"email": email, "password": common.PASSWORD}
                    response = client.post("/api/v1/auth/token/", body, content_type="application/json")
                    assert response.status_code == 200, response.content

                sign_in()  # warm-up
                signin = median_ms(sign_in, args.samples)
                signups = []
                for _ in range(args.samples):
                    standby_pool_refill(size=1)  # what the refill task does between sign-ups, not timed
                    body = {
                        "email": f"{uuid.uuid4().hex[:12]}@passwords.bench.test",
                        "password": common.PASSWORD,
                        "first_name": "Bench",
                        "organization_name": "Signed Up",
                    }
                    start = time.perf_counter()
                    response = client.post("/api/v1/auth/register/", body, content_type="application/json")
                    signups.append((time.perf_counter() - start) * 1000)
                    assert response.status_code == 201, response.content
                figures[label] = {"sign-in": signin, "sign-up": statistics.median(signups)}
                print(f"{label:24} sign-in p50 {signin:7.1f} ms   sign-up p50 {figures[label]['sign-up']:7.1f} ms")
    finally:
        for organization in Organization.objects.exclude(schema_name="public").exclude(slug__startswith="bench"):
            if organization.status != OrganizationStatus.DELETED:
                organization.status = OrganizationStatus.DELETED
                organization.save(update_fields=["status"])
            organization_purge(organization=organization)
        User.objects.filter(email__endswith="@passwords.bench.test").delete()

    before, after = figures["before (PBKDF2 first)"], figures["after (Argon2id first)"]
    common.check("the production Argon2id hash < 200 ms median", production_hash < 200, f"{production_hash:.1f} ms")
    common.check(
        "sign-in p50 with Argon2id <= with PBKDF2",
        after["sign-in"] <= before["sign-in"],
        f"{after['sign-in']:.1f} ms vs {before['sign-in']:.1f} ms",
    )
    common.finish()


if __name__ == "__main__":
    main()
