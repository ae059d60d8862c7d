"""The response headers of the API that a browser client reads, in one list: CORS exposes exactly these
(``CORS_EXPOSE_HEADERS`` in ``config/settings.py``).

A script on another origin sees only the CORS-safelisted response headers (``Cache-Control``, ``Content-Language``,
``Content-Length``, ``Content-Type``, ``Expires``, ``Last-Modified``, ``Pragma``) unless the server names the others in
``Access-Control-Expose-Headers``. A header the API starts to send belongs here; ``tests/api/test_cors.py`` fails
when a response carries one that is neither here nor in its short list of headers meant for the browser itself
(``Vary``, ``X-Frame-Options``, …).

Plain strings, no imports: the settings module reads this list before Django is set up.
"""

# billing/ratelimit.py: every organization-scoped response (draft RFC names and the older X- names).
RATE_LIMIT = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)
# config/api/errors.py: 429 answers (rate limits, throttles, account lockout).
RETRY_AFTER = "Retry-After"
# config/api/errors.py: 401 answers (which credentials to send).
WWW_AUTHENTICATE = "WWW-Authenticate"
# config/api/idempotency.py: a replayed answer to a retried Idempotency-Key.
IDEMPOTENT_REPLAYED = "Idempotent-Replayed"
# crm/api/transfer_views.py: exports and import error reports (the file name).
CONTENT_DISPOSITION = "Content-Disposition"
# crm/api/transfer_views.py: 202 for a queued import (where to poll); replayed by idempotency.
LOCATION = "Location"
# Django REST framework: the methods an endpoint takes, on every answer (405 included).
ALLOW = "Allow"

# config/log.py: every answer (the id its log lines, and those of the tasks it queued, carry).
REQUEST_ID = "X-Request-ID"

EXPOSED = (
    *RATE_LIMIT,
    RETRY_AFTER,
    WWW_AUTHENTICATE,
    IDEMPOTENT_REPLAYED,
    CONTENT_DISPOSITION,
    LOCATION,
    ALLOW,
    REQUEST_ID,
)
