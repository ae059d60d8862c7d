"""Settings of the baseline server of ``bench/api.py``: the project's settings without tenancy, authentication,
permissions or rate limits, serving ``bench/baseline_urls.py``.

The tenant middleware is gone and the database engine is Django's own PostgreSQL backend; the connection's
``search_path`` is the benchmark organization's schema (``BENCH_BASELINE_SCHEMA``), so the bare view reads the
same ``crm_lead`` table as the product. Everything else (middleware, database connection reuse, JSON rendering,
production mode) is the project's.
"""

import os

from config.settings import *  # noqa: F403
from config.settings import DATABASES, MIDDLEWARE, REST_FRAMEWORK

ROOT_URLCONF = "bench.baseline_urls"
MIDDLEWARE = [name for name in MIDDLEWARE if not name.startswith("tenants.")]
DATABASES = {
    "default": {
        **DATABASES["default"],
        "ENGINE": "django.db.backends.postgresql",
        "OPTIONS": {"options": f"-c search_path={os.environ['BENCH_BASELINE_SCHEMA']},public"},
    }
}
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_THROTTLE_CLASSES": [],
    "EXCEPTION_HANDLER": "rest_framework.views.exception_handler",
}
