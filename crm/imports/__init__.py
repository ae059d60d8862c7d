"""Imports of contacts, companies and leads from CSV or XLSX files.

:func:`import_job_create` runs in the request: it checks the file (size, format, encoding, header, row count) and
the column mapping, stores the file and queues :func:`crm.tasks.import_run_task` after commit.
:func:`import_run` runs in the task: it streams the file and works in batches of ``IMPORT_BATCH_SIZE`` rows. Each
batch is one transaction: one dedupe lookup, bulk inserts and updates, the domain events (bulk, in the same
transaction) and the job's progress. A retried or redelivered task resumes after the last committed batch; a
second runner of the same job steps aside (an advisory lock per job). Rows that fail validation are reported,
one line per problem, in the job's errors CSV; the other rows are kept.

Modules: ``files`` (reading, upload checks), ``fields`` (mapping targets, cell cleaning), ``batches`` (decisions
and writes of one batch), ``jobs`` (creating, running and finishing a job).

Settings (environment variables, read in ``config.settings``): ``IMPORT_MAX_BYTES`` (50 MiB, larger uploads: 413
``file_too_large``), ``IMPORT_MAX_ROWS`` (100,000 rows, more: 400 ``too_many_rows``), ``IMPORT_BATCH_SIZE`` (2,000)
and ``IMPORT_WORK_DIR`` (where the errors CSV grows while a job runs; ``MEDIA_ROOT/imports/work``).

Rules a user sees:

- Encoding: UTF-8, with or without a BOM. Anything else is refused (400 ``invalid_encoding``) rather than guessed:
  cp1252, Latin-1 and other single-byte code pages decode any byte, so a wrong guess silently stores mojibake.
  Spreadsheet applications offer "CSV UTF-8"; XLSX files carry their own encoding.
- CSV delimiter: ``,``, ``;`` or tab, whichever the header line has most of.
- Row numbers are spreadsheet rows (the header is row 1). Blank rows are ignored and not counted.
- A CSV row with more or fewer cells than the header is ``malformed_row``; cells are validated like the API does
  (e-mail format, choices, lengths, numbers, custom fields, tags); the owner column takes a member's e-mail.
- Dedupe: contacts and leads by e-mail, companies by domain. A record created earlier in the same file counts as
  existing. ``skip`` leaves a match alone; ``update`` writes the row's non-empty cells over it (an empty cell never
  clears a value; tags are added, never removed), and a row that changes nothing is counted as skipped and records
  no event; ``create`` always creates, except where the key is unique: a contact's e-mail (``duplicate_email``), a
  company's domain (``duplicate_domain``).
- Records are owned by the importing user unless an ``owner`` column names another member.
- The contacts limit of the plan is enforced per batch: past it, rows are reported as ``plan_limit_reached``.
- Cell values are stored as given, formulas included (``=...``); exports neutralize them (see ``crm.exports``:
  a quote in CSV, text cells in XLSX). A cell that a CSV export neutralized (``'=...``) is read back without the
  quote.
"""

from .fields import CUSTOM_PREFIX, IMPORTABLE, targets
from .files import (
    EmptyFile,
    FileTooLarge,
    ImportNotFinished,
    InvalidEncoding,
    InvalidMapping,
    TooManyRows,
    UnsupportedFile,
    cell_text,
    inspect_file,
    max_bytes,
    max_rows,
    neutralize,
)
from .jobs import errors_csv_lines, import_fail, import_job_create, import_run

__all__ = [
    "CUSTOM_PREFIX",
    "IMPORTABLE",
    "EmptyFile",
    "FileTooLarge",
    "ImportNotFinished",
    "InvalidEncoding",
    "InvalidMapping",
    "TooManyRows",
    "UnsupportedFile",
    "cell_text",
    "errors_csv_lines",
    "import_fail",
    "import_job_create",
    "import_run",
    "inspect_file",
    "max_bytes",
    "max_rows",
    "neutralize",
    "targets",
]
