"""Project settings. Every value comes from the environment, with a working local default."""

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url

from config.api import headers as api_headers

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    return env(name, "1" if default else "0").strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(env(name, str(default)))


def env_float(name: str, default: float) -> float:
    return float(env(name, str(default)))


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = env("DJANGO_SECRET_KEY", "local-development-only-secret-key-change-me-0123456789abcdef")
if not DEBUG and SECRET_KEY.startswith("local-development-only"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG=0")

# Organizations are reached as <slug>.<TENANT_BASE_DOMAIN> or with the X-Organization header.
TENANT_BASE_DOMAIN = env("TENANT_BASE_DOMAIN", "localhost")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", f"localhost,127.0.0.1,[::1],.{TENANT_BASE_DOMAIN},testserver")

# --- Apps: control plane (public schema) and data plane (one schema per organization) ---
SHARED_APPS = [
    "django_tenants",
    "tenants",
    "identity",
    "rbac",
    "billing",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "corsheaders",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # The project itself: its management commands that set up several apps at once (seed_demo) sit above them.
    "config",
]
TENANT_APPS = [
    "crm",
    "crm.campaigns",
    "pipelines",
    "analytics",
    "assistant",
    "integrations",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Organization"
TENANT_DOMAIN_MODEL = "tenants.Domain"
# SET search_path once per connection and schema change, not on every cursor.
TENANT_LIMIT_SET_CALLS = True
# Standby schemas kept ready so sign-up does not wait for migrations (tenants/services.py).
TENANT_STANDBY_POOL_SIZE = env_int("TENANT_STANDBY_POOL_SIZE", 3)
# How long a tenant stays suspended after deletion before its schema may be purged.
TENANT_PURGE_AFTER_DAYS = env_int("TENANT_PURGE_AFTER_DAYS", 30)

MIDDLEWARE = [
    # Outermost: the request id, one log line and the metrics of every request (config/log.py, config/metrics.py)
    "config.log.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    # /api/: refuses unusable input before anything else and answers every error as a problem document
    "config.api.middleware.ApiEdgeMiddleware",
    "tenants.middleware.TenantResolutionMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "config.api.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Overrides of third-party templates (the ReDoc page without external fonts).
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---
DATABASE_URL = env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/crm")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 600))}
DATABASES["default"]["ENGINE"] = "config.postgresql"  # django-tenants' backend, timestamps loaded faster
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Seconds to wait for a new connection (libpq's minimum is 2); without it a connect to an unreachable host waits
# for the kernel's TCP timeout.
DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT_SECONDS", 5))
# One test database per test run, so concurrent runs on one machine never share one.
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME", f"test_crm_{os.getpid()}")}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Redis ---
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
# Every Redis call (caches, rate limits, idempotency keys, the broker) gives up after this long: a frozen Redis
# accepts connections and never answers, and without a timeout each request would wait for it.
REDIS_TIMEOUT_SECONDS = env_float("REDIS_TIMEOUT_SECONDS", 0.5)
# After a Redis call fails, the server is skipped this long (per process) before one call probes it again
# (config/breaker.py), so an outage costs one timeout per backoff period, not one per request.
REDIS_BACKOFF_SECONDS = env_float("REDIS_BACKOFF_SECONDS", 5.0)
_REDIS_TIMEOUTS = {"socket_connect_timeout": REDIS_TIMEOUT_SECONDS, "socket_timeout": REDIS_TIMEOUT_SECONDS}
CACHES = {
    "default": {
        "BACKEND": "config.cache.ResilientRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "crm"),
        # Keys carry the active schema, so one organization's cache never answers another's request.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "OPTIONS": _REDIS_TIMEOUTS,
    },
    # Control-plane lookups (tenant resolution, authorization decisions): keys never depend on the schema.
    "control": {
        "BACKEND": "config.cache.ResilientRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "crm") + ":control",
        "OPTIONS": _REDIS_TIMEOUTS,
    },
}

# /readyz reports a dependency down when it has not answered within this many seconds (checks run side by side).
READYZ_TIMEOUT_SECONDS = env_float("READYZ_TIMEOUT_SECONDS", 0.5)

# --- Auth ---
AUTH_USER_MODEL = "identity.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Argon2id with parameters measured on a 2-core server (identity/hashers.py, decision 0015); hashes of the hashers
# after it (PBKDF2, the previous default) still verify and are rehashed with the first at the next sign-in. The
# test suite sets a fast hasher (tests/conftest.py).
PASSWORD_HASHERS = env_list(
    "PASSWORD_HASHERS",
    "identity.hashers.Argon2idPasswordHasher,"
    "django.contrib.auth.hashers.PBKDF2PasswordHasher,"
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
)

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env_int("JWT_ACCESS_TTL_SECONDS", 300)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env_int("JWT_REFRESH_TTL_SECONDS", 14 * 24 * 3600)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": env("JWT_SIGNING_KEY", SECRET_KEY),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_CLAIM": "user_id",
    # Tokens carry a digest of the password hash: changing or resetting the password ends every session at once,
    # access tokens included (refresh tokens are also blacklisted).
    "CHECK_REVOKE_TOKEN": True,
}

# Brute-force protection: failures per account and per IP within a window lock the door for that window
# (identity/lockout.py). The lock lasts a full window from the failure that reached the limit.
AUTH_LOCKOUT_MAX_FAILURES = env_int("AUTH_LOCKOUT_MAX_FAILURES", 5)
AUTH_LOCKOUT_IP_MAX_FAILURES = env_int("AUTH_LOCKOUT_IP_MAX_FAILURES", 20)
AUTH_LOCKOUT_WINDOW_SECONDS = env_int("AUTH_LOCKOUT_WINDOW_SECONDS", 900)

# One-time codes (password reset).
OTP_TTL_SECONDS = env_int("OTP_TTL_SECONDS", 600)
OTP_MAX_ATTEMPTS = env_int("OTP_MAX_ATTEMPTS", 5)
# Codes sent per account per hour; further requests still answer 202 but send nothing.
OTP_MAX_PER_HOUR = env_int("OTP_MAX_PER_HOUR", 5)

# API keys: after a rotation the old secret keeps working this long, so integrations can switch over.
API_KEY_ROTATION_GRACE_SECONDS = env_int("API_KEY_ROTATION_GRACE_SECONDS", 24 * 3600)

# Google sign-in: ID tokens must be issued for one of these OAuth client IDs (none: Google sign-in is off).
GOOGLE_CLIENT_IDS = env_list("GOOGLE_CLIENT_IDS")
GOOGLE_CERTS_URL = env("GOOGLE_CERTS_URL", "https://www.googleapis.com/oauth2/v1/certs")
GOOGLE_CERTS_TIMEOUT_SECONDS = env_int("GOOGLE_CERTS_TIMEOUT_SECONDS", 5)

# --- API ---
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "identity.authentication.ApiKeyAuthentication",
        # simplejwt's JWTAuthentication, the user read through the control cache (dropped on every change)
        "identity.authentication.CachedUserJWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.api.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "config.api.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 25,
    "DEFAULT_SCHEMA_CLASS": "config.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "auth": env("THROTTLE_AUTH_RATE", "30/min"),
        "auth_code": env("THROTTLE_AUTH_CODE_RATE", "10/min"),
    },
    "NUM_PROXIES": env_int("NUM_PROXIES", 0) if env("NUM_PROXIES") else None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")
# Who decides, and what limits the rate, on every organization-scoped endpoint (config/api/viewsets.py): the
# plumbing names them here instead of importing the apps above it.
API_ORGANIZATION_POLICY = "rbac.policy.OrganizationPolicy"
API_ORGANIZATION_THROTTLES = ["billing.ratelimit.PlanRateThrottle"]
# The users a request-body reference to a person may name (config/api/fields.py MemberField): a function of the
# organization's id returning a queryset of users.
API_MEMBER_USERS = "rbac.selectors.active_member_users"

SPECTACULAR_SETTINGS = {
    "TITLE": "CRM API",
    "DESCRIPTION": (
        "Multi-tenant CRM API. Authenticate with a JWT bearer token from `/api/v1/auth/token/`; "
        "choose the organization with the `X-Organization` header (or its sub-domain). "
        "Every error is an RFC 9457 problem document with a stable `code`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "OrganizationStatusEnum": "tenants.choices.OrganizationStatus",
        "InvitationStatusEnum": "rbac.choices.InvitationStatus",
        "SubscriptionStatusEnum": "billing.choices.SubscriptionStatus",
        "LeadStatusEnum": "crm.choices.LeadStatus",
        "ContactStatusEnum": "crm.choices.ContactStatus",
        "ImportStatusEnum": "crm.choices.ImportStatus",
        "ActivityKindEnum": "crm.choices.ActivityKind",
        "RecordTypeEnum": "crm.choices.RecordType",
        "CustomFieldTypeEnum": "crm.choices.CustomFieldType",
        "LeadEditableStatusEnum": "crm.choices.EDITABLE_LEAD_STATUSES",
        "DealStatusEnum": "pipelines.choices.DealStatus",
        "BillingIntervalEnum": "billing.choices.BillingInterval",
        "LeadSourceEnum": "crm.choices.LeadSource",
        "CampaignChannelEnum": "crm.campaigns.choices.Channel",
        "SegmentKindEnum": "crm.campaigns.choices.SegmentKind",
        "CampaignStatusEnum": "crm.campaigns.choices.CampaignStatus",
        "CampaignDeliveryStatusEnum": "crm.campaigns.choices.DeliveryStatus",
        "ConsentStatusEnum": "crm.campaigns.choices.ConsentStatus",
        "ConsentSourceEnum": "crm.campaigns.choices.ConsentSource",
        "RecordedConsentSourceEnum": "crm.campaigns.choices.RECORDED_SOURCES",
        "SkipReasonEnum": "crm.campaigns.choices.SkipReason",
        "SuppressionReasonEnum": "crm.campaigns.choices.SuppressionReason",
        "StatsIntervalEnum": "crm.campaigns.choices.STATS_INTERVALS",
        "NextActionKindEnum": "analytics.choices.ActionKind",
        "MeasureKindEnum": "analytics.api.serializers.MEASURE_KINDS",
        "SourceOrNoneEnum": "analytics.api.serializers.SOURCE_CHOICES",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api.schema.postprocess_schema",
    ],
}

CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", "http://localhost:3000,http://127.0.0.1:3000")
CORS_ALLOW_HEADERS = (
    "accept",
    "x-request-id",
    "authorization",
    "content-type",
    "idempotency-key",
    "x-organization",
    "x-api-key",
    "x-requested-with",
)
# Every response header a script may read: the one list in config/api/headers.py.
CORS_EXPOSE_HEADERS = api_headers.EXPOSED

# --- Celery ---
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
# kombu's Redis transport with a fix for workers that lose Redis mid-task (config/broker.py).
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A message taken by a worker that dies comes back after the visibility timeout; webhook deliveries do not wait
# for it (the sweep sends again a delivery whose worker died, integrations/relay.py).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, **_REDIS_TIMEOUTS}
# Publishing (after a commit, on the request path) tries once more on a fresh connection, then gives up: with the
# socket timeout above a dead or frozen broker costs at most ~2 x REDIS_TIMEOUT_SECONDS, once per backoff period.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", "crm")
# Every task declared ``periodic=True`` has an entry here (tests/test_periodic.py).
CELERY_BEAT_SCHEDULE = {
    "refill-standby-schemas": {"task": "tenants.refill_standby_pool", "schedule": 300.0},
    "purge-deleted-organizations": {"task": "tenants.purge_deleted_organizations", "schedule": 3600.0},
    "expire-trials": {"task": "billing.expire_trials", "schedule": 900.0},
    # Dunning: past-due subscriptions whose grace is over go to Free; downgrades due at the period's end apply.
    "billing-dunning": {"task": "billing.dunning", "schedule": 3600.0},
    # Metered usage (co-pilot and campaign messages) reported to the payment provider where the plan prices it.
    "billing-report-usage": {"task": "billing.report_usage", "schedule": 300.0},
    # The webhook safety net: relays events no commit relayed, sends due retries and lost or orphaned messages.
    "webhooks-sweep": {"task": "integrations.sweep", "schedule": env_float("WEBHOOK_SWEEP_INTERVAL_SECONDS", 60.0)},
    # Campaigns: starts those due, sends again what a dead worker held, wakes campaigns whose runner was lost.
    "campaigns-tick": {"task": "campaigns.tick", "schedule": env_float("CAMPAIGN_TICK_INTERVAL_SECONDS", 30.0)},
    # Daily metric snapshots: hourly, since each organization's day ends at its own local midnight.
    "analytics-snapshots": {"task": "analytics.snapshot_all", "schedule": 3600.0},
}

# --- Analytics ---
# Report results are cached this long at most (changes invalidate them at once; this bounds figures that move with
# the clock alone, such as overdue tasks).
ANALYTICS_CACHE_SECONDS = env_int("ANALYTICS_CACHE_SECONDS", 300)

# --- the co-pilot (assistant/): any OpenAI-compatible Chat Completions server ---
ASSISTANT_BASE_URL = env("ASSISTANT_BASE_URL")  # empty: the official API of the `openai` client
ASSISTANT_MODEL = env("ASSISTANT_MODEL")
ASSISTANT_API_KEY = env("ASSISTANT_API_KEY")
ASSISTANT_TIMEOUT_SECONDS = env_float("ASSISTANT_TIMEOUT_SECONDS", 30.0)
ASSISTANT_MAX_TOOL_ROUNDS = env_int("ASSISTANT_MAX_TOOL_ROUNDS", 5)
ASSISTANT_MAX_OUTPUT_TOKENS = env_int("ASSISTANT_MAX_OUTPUT_TOKENS", 1000)
ASSISTANT_MAX_TOOL_RESULT_CHARS = env_int("ASSISTANT_MAX_TOOL_RESULT_CHARS", 8000)
# Answers one server process gives at once (each holds a thread while the model talks); past it 503
# `assistant_busy` with Retry-After, before anything is counted. Below WEB_THREADS (config/gunicorn.py, 32), so the
# other threads keep serving the rest of the API whatever the co-pilot does.
ASSISTANT_ANSWERS_PER_PROCESS = env_int("ASSISTANT_ANSWERS_PER_PROCESS", 24)
ASSISTANT_ENCRYPTION_KEY = env("ASSISTANT_ENCRYPTION_KEY")  # empty: derived from SECRET_KEY

# --- E-mail ---
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "CRM <no-reply@localhost>")

# --- Campaigns (crm/campaigns/, docs/decisions/0012-campaigns.md) ---
# The mail backend of campaign messages: Django's SMTP backend, or an anymail one (e.g.
# anymail.backends.mailgun.EmailBackend). Empty: EMAIL_BACKEND.
CAMPAIGN_EMAIL_BACKEND = env("CAMPAIGN_EMAIL_BACKEND")
# Sender of campaign e-mails (the organization's name is shown as its display name); also the Message-ID domain.
CAMPAIGN_FROM_EMAIL = env("CAMPAIGN_FROM_EMAIL", "campaigns@localhost")
# Unsubscribe links and provider callbacks reach the organization's host: {slug} is replaced by its slug.
CAMPAIGN_PUBLIC_URL = env("CAMPAIGN_PUBLIC_URL", "http://{slug}." + TENANT_BASE_DOMAIN + ":8000")
# Deliveries claimed and sent together (their consent is read in the claim), and runners per campaign.
CAMPAIGN_BATCH_SIZE = env_int("CAMPAIGN_BATCH_SIZE", 100)
CAMPAIGN_RUNNERS = env_int("CAMPAIGN_RUNNERS", 2)
# A runner sends for this many seconds, then queues itself again (other organizations' campaigns get a turn).
CAMPAIGN_RUNNER_SLICE_SECONDS = env_float("CAMPAIGN_RUNNER_SLICE_SECONDS", 60.0)
# Messages per second per provider, for the whole deployment (0: no limit).
CAMPAIGN_EMAIL_PER_SECOND = env_int("CAMPAIGN_EMAIL_PER_SECOND", 0)
CAMPAIGN_TWILIO_PER_SECOND = env_int("CAMPAIGN_TWILIO_PER_SECOND", 10)
# Attempts of one message after temporary failures (backoff doubling from the first delay, capped at an hour).
CAMPAIGN_MAX_ATTEMPTS = env_int("CAMPAIGN_MAX_ATTEMPTS", 6)
CAMPAIGN_RETRY_FIRST_DELAY_SECONDS = env_float("CAMPAIGN_RETRY_FIRST_DELAY_SECONDS", 30.0)
# Twilio (SMS and WhatsApp). Without an account SID and token both channels are off (409 channel_not_configured).
TWILIO_ACCOUNT_SID = env("TWILIO_ACCOUNT_SID")
TWILIO_AUTH_TOKEN = env("TWILIO_AUTH_TOKEN")
TWILIO_SMS_FROM = env("TWILIO_SMS_FROM")
TWILIO_WHATSAPP_FROM = env("TWILIO_WHATSAPP_FROM")
# Empty: Twilio's own API host. Tests and local development point it at a local server.
TWILIO_API_BASE_URL = env("TWILIO_API_BASE_URL")
TWILIO_TIMEOUT_SECONDS = env_float("TWILIO_TIMEOUT_SECONDS", 10.0)
# anymail: providers' credentials and the secrets of their tracking webhooks.
ANYMAIL = {
    "WEBHOOK_SECRET": env("ANYMAIL_WEBHOOK_SECRET"),
    "MAILGUN_API_KEY": env("ANYMAIL_MAILGUN_API_KEY"),
    "MAILGUN_SENDER_DOMAIN": env("ANYMAIL_MAILGUN_SENDER_DOMAIN"),
    "MAILGUN_WEBHOOK_SIGNING_KEY": env("ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY"),
    "POSTMARK_SERVER_TOKEN": env("ANYMAIL_POSTMARK_SERVER_TOKEN"),
}
ANYMAIL = {name: value for name, value in ANYMAIL.items() if value}

# Links in e-mails (invitations) point at the web frontend.
FRONTEND_URL = env("FRONTEND_URL", "http://localhost:3000")

# --- Billing: the payment provider (Stripe; docs/decisions/0014-payments.md) ---
# Without an API key paid plans are had only through a trial or the admin (402 payment_provider_not_configured).
STRIPE_API_KEY = env("STRIPE_API_KEY")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET")
# Empty: Stripe's own API host. Tests point it at a local server.
STRIPE_API_BASE_URL = env("STRIPE_API_BASE_URL")
STRIPE_TIMEOUT_SECONDS = env_float("STRIPE_TIMEOUT_SECONDS", 10.0)
STRIPE_MAX_NETWORK_RETRIES = env_int("STRIPE_MAX_NETWORK_RETRIES", 1)
# Days a past-due subscription keeps its plan before dunning moves it to Free.
BILLING_GRACE_DAYS = env_int("BILLING_GRACE_DAYS", 7)
# Where checkout and the customer portal send the customer back.
BILLING_RETURN_URL = env("BILLING_RETURN_URL", FRONTEND_URL + "/settings/billing")

# --- i18n, static ---
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Uploaded import files and generated error reports; shared by web and worker (a volume in compose.yaml).
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
MEDIA_URL = "media/"
# Uploads above this size are refused before they are read.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)

# --- Imports and exports (crm/imports, crm/exports.py) ---
# Larger import files: 413 file_too_large; more rows: 400 too_many_rows. A job commits every IMPORT_BATCH_SIZE rows
# (it resumes after its last committed batch); its errors CSV grows in IMPORT_WORK_DIR (MEDIA_ROOT/imports/work).
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 50 * 1024 * 1024)
IMPORT_MAX_ROWS = env_int("IMPORT_MAX_ROWS", 100_000)
IMPORT_BATCH_SIZE = env_int("IMPORT_BATCH_SIZE", 2000)
IMPORT_WORK_DIR = env("IMPORT_WORK_DIR")
# PDF exports: at most this many rows (more: 400 too_many_rows_for_pdf), in this TrueType font (Helvetica without it).
EXPORT_PDF_MAX_ROWS = env_int("EXPORT_PDF_MAX_ROWS", 500)
EXPORT_PDF_FONT = env("EXPORT_PDF_FONT", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

# --- Logging (config/log.py) ---
# One handler, the root's: every line is written once, in one format: JSON objects when the output is not a terminal,
# readable lines on one (LOG_FORMAT: json, plain or auto). Every request is one line, from config.request (request
# id, organization, caller, route, status, duration, SQL queries); django.request keeps only 5xx answers, with their
# traceback, and the access lines of the development server (django.server) and gunicorn are off. Django's own
# console handler (DEBUG) printed a 4xx a second time.
LOG_FORMAT = env("LOG_FORMAT", "auto")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"default": {"()": "config.log.formatter", "style": LOG_FORMAT}},
    "filters": {
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
        "context": {"()": "config.log.ContextFilter"},
        "only_server_errors": {"()": "config.log.OnlyServerErrors"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "default", "filters": ["context"]},
        # As Django's default: server errors mailed to ADMINS (none unless configured), not a log line.
        "mail_admins": {
            "level": "ERROR",
            "filters": ["require_debug_false"],
            "class": "django.utils.log.AdminEmailHandler",
        },
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["mail_admins"], "level": "INFO", "propagate": True},
        "django.request": {"filters": ["only_server_errors"]},
        "django.server": {"handlers": [], "propagate": False, "level": "CRITICAL"},
        "django.db.backends": {"level": "WARNING"},
    },
}
# Workers keep this configuration (without it Celery replaces the root's handler with its own format).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Metrics (config/metrics.py) and error reports (config/error_reports.py) ---
# GET /metrics answers this bearer token, or a staff session; without a token it is open under DJANGO_DEBUG=1 only.
METRICS_TOKEN = env("METRICS_TOKEN")
SENTRY_DSN = env("SENTRY_DSN")
if SENTRY_DSN:
    from config.error_reports import sentry_init

    sentry_init(
        dsn=SENTRY_DSN,
        environment=env("SENTRY_ENVIRONMENT", "development" if DEBUG else "production"),
        traces_sample_rate=env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0),
    )

# --- Production hardening (DJANGO_DEBUG=0) ---
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    X_FRAME_OPTIONS = "DENY"
    CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
