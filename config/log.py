"""Logging filters used by ``LOGGING`` in config/settings.py."""

from __future__ import annotations

import logging


class WithoutErrorResponses(logging.Filter):
    """Drops the development server's access line of a 4xx or 5xx answer: ``django.request`` logs every such
    answer once (``Not Found: /api/v1/...``, a 5xx with its traceback), so the access line would be a second one.
    Lines of other answers pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "status_code", 0) < 400
