"""Celery tasks of the CRM. Tenant tasks: queued from a request, they run in that organization's schema."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import IntegrityError, InterfaceError, OperationalError

from . import imports

logger = logging.getLogger(__name__)

# Worth another try: the database went away, or a concurrent write took an e-mail between lookup and insert
# (the retry resumes after the last committed batch and finds the record).
TRANSIENT = (OperationalError, InterfaceError, IntegrityError)


@shared_task(bind=True, name="crm.import_run", soft_time_limit=3300, time_limit=3600)
def import_run_task(self, job_id: str) -> str | None:
    """Process an import job; idempotent (a finished job is left alone, a started one resumes)."""
    try:
        job = imports.import_run(job_id=job_id)
    except TRANSIENT as exc:
        if self.request.retries >= self.max_retries:
            imports.import_fail(job_id=job_id, reason="The import could not finish; try again later.")
            raise
        raise self.retry_later(exc) from exc
    except Exception:
        logger.exception("import %s failed", job_id)
        imports.import_fail(job_id=job_id, reason="The import failed unexpectedly; our team has been notified.")
        raise
    return job.status if job is not None else None
