"""Import jobs: created in the request after the upload checks, run by the task batch by batch, resumable."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterator

from django.core.files import File
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from config.api.errors import ValidationFailed
from config.db import commit_meanwhile, connection
from config.locks import LockNamespace, session_try_lock
from config.memory import fewer_collections
from config.tasks import queue_after_commit
from crm import custom_fields
from crm.choices import DedupePolicy, ImportStatus
from crm.models import ImportJob
from crm.permissions import IMPORT
from rbac.access import Access
from rbac.errors import PermissionDenied

from . import batches
from .fields import IMPORTABLE, resolve_mapping
from .files import (
    FileTooLarge,
    RowProblem,
    Unreadable,
    UnsupportedFile,
    batch_size,
    cell_text,
    header_names,
    inspect_file,
    max_bytes,
    neutralize,
    read_rows,
    work_dir,
)

ERRORS_HEADER = ["row", "field", "code", "message"]
FINISHED = (ImportStatus.COMPLETED, ImportStatus.FAILED)
# The batches run with the garbage collector's youngest generation collected every this many batch sizes of new
# objects, not every 700 (``config.memory``): a batch's rows, their values and their events are freed with the
# batch instead of reaching the oldest generation and its full collections. 0.9 s less client CPU per 100,000
# contacts (decision 0020).
COLLECT_EVERY_BATCHES = 10


# --- creating a job (in the request) ---


def _can_import(access: Access, record_type: str) -> None:
    permission = IMPORT[record_type]
    if access.scope(permission) is None:
        raise PermissionDenied(extra={"permission": permission})


@transaction.atomic
def import_job_create(
    *,
    actor: Access,
    upload: File,
    record_type: str,
    mapping: dict | None = None,
    dedupe_policy: str = DedupePolicy.SKIP,
) -> ImportJob:
    """Check an uploaded file and queue its import. Refuses what cannot work before anything runs."""
    if record_type not in IMPORTABLE:
        raise ValidationFailed(f"{record_type!r} records cannot be imported.", field="record_type", code="invalid")
    _can_import(actor, record_type)
    if dedupe_policy not in DedupePolicy.values:
        raise ValidationFailed("Unknown dedupe policy.", field="dedupe_policy", code="invalid_choice")
    limit = max_bytes()
    if upload.size is not None and upload.size > limit:
        raise FileTooLarge(f"The file is larger than {limit:,} bytes.", extra={"max_bytes": limit})
    info = inspect_file(upload)
    definitions = custom_fields.definitions(record_type)
    resolved = resolve_mapping(record_type, info.header, mapping, definitions)
    original = os.path.basename(str(getattr(upload, "name", "") or "upload"))[:255]
    job = ImportJob(
        record_type=record_type,
        original_filename=original,
        file_format=info.file_format,
        mapping=resolved,
        dedupe_policy=dedupe_policy,
        total_rows=info.total_rows,
        created_by_id=actor.user_id,
    )
    upload.seek(0)
    job.file.save(f"{connection.schema_name}/{job.pk}.{info.file_format}", upload, save=False)
    job.save()
    from crm.tasks import import_run_task

    job_id = str(job.pk)

    def fail_unqueued() -> None:
        import_fail(job_id=job_id, reason="The import could not be started; try again.")

    queue_after_commit(import_run_task, job_id, on_unavailable=fail_unqueued)
    return job


# --- the errors CSV of a running job ---


class _ErrorLog:
    """One line per problem: row, field, code, message and the row's cells (neutralized, as in every export).
    It grows in a work file while the job runs; lines of batches that did not commit are dropped on resume."""

    def __init__(self, job: ImportJob, header: list[str], *, resume_after_row: int | None):
        self.path = work_dir() / connection.schema_name / f"{job.pk}.errors.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        first_line = [*ERRORS_HEADER, *header]
        if resume_after_row is not None and self.path.exists():
            kept = self.path.with_suffix(".kept")
            with (
                open(self.path, newline="", encoding="utf-8") as source,
                open(kept, "w", newline="", encoding="utf-8") as target,
            ):
                writer = csv.writer(target)
                writer.writerow(first_line)
                for line in csv.reader(source):
                    if line and line[0].isdigit() and int(line[0]) <= resume_after_row:
                        writer.writerow(line)
            os.replace(kept, self.path)
        else:
            with open(self.path, "w", newline="", encoding="utf-8") as target:
                csv.writer(target).writerow(first_line)
        self.file = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self.writer = csv.writer(self.file)

    def write(self, errors: list[tuple[int, list, list[batches.Problem]]]) -> None:
        for number, cells, problems in sorted(errors, key=lambda error: error[0]):
            shown = [neutralize(cell if isinstance(cell, str) else cell_text(cell)) for cell in cells]
            for field_name, code, message in problems:
                self.writer.writerow([number, field_name, code, neutralize(message), *shown])
        self.file.flush()

    def close(self) -> None:
        self.file.close()

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


# --- running a job (in the task) ---


def _run_lock(job_id):
    """A session advisory lock per job: one runner at a time; released when the runner's connection dies."""
    return session_try_lock(LockNamespace.IMPORT_RUN, "import", job_id)


Checked = tuple[int, list | RowProblem, batches.Row | list[batches.Problem]]  # (row number, cells, clean's result)


class _ReadAhead:
    """The file's rows in batches, read and checked (``batches.clean``) ahead: :meth:`step` reads the next batch's
    rows a few at a time while PostgreSQL stores this one's events (``batches.write``), and :meth:`batches`
    reads whatever is left. What reading or checking raises comes out of :meth:`batches` where the batch it fell in
    begins, after the batch before has committed, as if the rows were read there."""

    STEP = 32  # rows read at each step

    def __init__(self, setup: batches.ImportSetup, rows: Iterator, size: int):
        self.setup, self.rows, self.size = setup, rows, size
        self.ready: list[Checked] = []
        self.error: Exception | None = None
        self.exhausted = False

    def step(self, count: int = STEP) -> None:
        if self.exhausted or self.error is not None:
            return
        setup, ready, clean = self.setup, self.ready, batches.clean
        try:
            for _ in range(min(count, self.size - len(ready))):
                number, cells = next(self.rows)
                ready.append((number, cells, clean(setup, number, cells)))
        except StopIteration:
            self.exhausted = True
        except Exception as exc:  # raised where its batch begins (a task's time limit too)
            self.error = exc

    def batches(self) -> Iterator[list[Checked]]:
        while True:
            self.step(self.size)
            if self.error is not None:
                raise self.error
            if not self.ready:
                return
            batch, self.ready = self.ready, []
            yield batch


def _planned(setup: batches.ImportSetup, batch: list[Checked], *, early: bool = False) -> batches.Work | None:
    """The batch's valid rows planned (``batches.plan``), its invalid rows in the outcome already."""
    outcome, valid = batches.Outcome(), []
    for number, cells, result in batch:
        if isinstance(result, list):
            outcome.errors.append((number, cells if isinstance(cells, list) else [], result))
        else:
            valid.append(result)
    return batches.plan(setup, valid, outcome, early=early)


def _run_batches(job: ImportJob, setup: batches.ImportSetup, ahead: _ReadAhead, log: _ErrorLog) -> None:
    """Each batch in a transaction of its own, with the job's progress.

    The next batch's lookups run at the end of a batch's transaction (they see its writes), and its decisions are
    made while PostgreSQL commits (``config.db.commit_meanwhile``): the client decides while the server checks the
    tag links' foreign keys and flushes the WAL, instead of in turn. A batch that cannot be planned so
    (``batches.plan``) is planned in its own transaction."""
    upcoming = ahead.batches()
    batch = next(upcoming, None)
    early: batches.Work | None = None
    while batch is not None:
        later, unread = None, None
        with transaction.atomic():
            work = early if early is not None and batches.still_planned(setup) else None
            if work is None:
                work = _planned(setup, batch)
                assert work is not None, "a batch planned in its own transaction has its plan"
                batches.decide(setup, work)
            if work.rows:
                batches.write(setup, work, meanwhile=ahead.step)
            log.write(work.outcome.errors)
            outcome = work.outcome
            ImportJob.objects.filter(pk=job.pk).update(
                processed_rows=F("processed_rows") + len(batch),
                created_count=F("created_count") + outcome.created,
                updated_count=F("updated_count") + outcome.updated,
                skipped_count=F("skipped_count") + outcome.skipped,
                error_count=F("error_count") + len(outcome.errors),
            )
            try:
                later = next(upcoming, None)
            except Exception as exc:  # raised once this batch has committed, where the next begins
                unread = exc
            early = _planned(setup, later, early=True) if later else None
            with commit_meanwhile():
                if early is not None:
                    batches.decide(setup, early)
        if unread is not None:
            raise unread
        batch = later


def import_run(*, job_id) -> ImportJob | None:
    """Process an import job. Safe to run again: a finished job is left alone, a started one resumes after its
    last committed batch, and a job another runner holds is left to it."""
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None or job.status in FINISHED:
        return job
    with _run_lock(job.pk) as mine:
        if not mine:
            return job
        job.refresh_from_db()
        if job.status in FINISHED:
            return job
        if job.status == ImportStatus.PENDING:
            job.status, job.started_at = ImportStatus.RUNNING, timezone.now()
            job.save(update_fields=["status", "started_at"])
        log = None
        try:
            with job.file.open("rb") as binary, contextlib.closing(read_rows(binary, job.file_format)) as rows:
                _number, header_cells = next(rows)
                if isinstance(header_cells, RowProblem):
                    raise Unreadable("The header row cannot be read.")
                header = header_names(header_cells)
                setup = batches.setup_for(job, header)
                resume_after = None
                for _ in range(job.processed_rows):
                    resume_after, _cells = next(rows)
                log = _ErrorLog(job, header, resume_after_row=resume_after)
                size = batch_size()
                with fewer_collections(young=COLLECT_EVERY_BATCHES * size):
                    _run_batches(job, setup, _ReadAhead(setup, rows, size), log)
        except (Unreadable, UnsupportedFile) as exc:
            return _finish(job, log, status=ImportStatus.FAILED, reason=str(exc))
        except (UnicodeDecodeError, StopIteration, FileNotFoundError):
            return _finish(job, log, status=ImportStatus.FAILED, reason="The stored file cannot be read any more.")
        except BaseException:  # transient (the task retries and resumes) or a bug (the task fails the job)
            if log is not None:
                log.close()
            raise
        return _finish(job, log, status=ImportStatus.COMPLETED)


def _finish(job: ImportJob, log: _ErrorLog | None, *, status: str, reason: str = "") -> ImportJob:
    """Publish the errors CSV and close the job."""
    if log is not None:
        log.close()
    job.refresh_from_db()
    if log is not None and job.error_count:
        if job.errors_file:
            job.errors_file.delete(save=False)
        with open(log.path, "rb") as errors:
            job.errors_file.save(f"{connection.schema_name}/{job.pk}-errors.csv", File(errors), save=False)
    job.status, job.finished_at, job.failure_reason = status, timezone.now(), reason[:500]
    job.save(update_fields=["status", "finished_at", "failure_reason", "errors_file"])
    if log is not None:
        log.discard()
    return job


def import_fail(*, job_id, reason: str) -> ImportJob | None:
    """Mark a job that cannot finish as failed (a visible state, never a silent drop)."""
    ImportJob.objects.filter(pk=job_id).exclude(status__in=FINISHED).update(
        status=ImportStatus.FAILED, failure_reason=reason[:500], finished_at=timezone.now()
    )
    return ImportJob.objects.filter(pk=job_id).first()


def errors_csv_lines(job: ImportJob) -> Iterator[bytes]:
    """The job's errors CSV (only the header when it has none), for download."""
    if job.errors_file:
        with job.errors_file.open("rb") as errors:
            yield from iter(lambda: errors.read(64 * 1024), b"")
        return
    buffer = io.StringIO()
    csv.writer(buffer).writerow(ERRORS_HEADER)
    yield buffer.getvalue().encode()
