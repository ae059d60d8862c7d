"""One batch of rows: clean them, look their matches up (:func:`plan`), decide create / update / skip
(:func:`decide`), write and record events (:func:`write`).

A batch costs a constant number of queries whatever its size: one dedupe lookup, one for tags, one for the
contacts limit, the inserts, the updates and the events. New records, their tag links and every event are
written with PostgreSQL's ``COPY`` (ids are reserved from the table's sequence first, so the events can name
them): ``bulk_create`` spends about 110 µs per row compiling SQL and quoting arrays on the client, ``COPY`` about
30 µs, which is what lets an import keep up thousands of rows a second. Updates, rare and narrow, go through
``bulk_update``. Events are written in the batch's transaction, with the payloads ``outbox.snapshot`` gives.

PostgreSQL stores a ``COPY``'s rows as they arrive, so the client works while it does: new records' rows and their
events' payloads are made while the records are written, and the job reads and checks its next batch while the
events are (``write``'s ``meanwhile``). The job also plans the next batch at the end of a batch's transaction and
decides it while that transaction commits (``crm.imports.jobs``). Client and server work at once instead of in
turn, without a second thread and its handoffs of the interpreter lock.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F, Lookup
from django.db.models.functions import Lower
from django.utils import timezone

from billing.features import Limit
from billing.services import locked_limit
from billing.usage import counter_for
from config.api.errors import Duplicate
from config.db import connection, local_settings, native_cursor
from crm import custom_fields
from crm.choices import DedupePolicy, LeadSource, LeadStatus, RecordType
from crm.errors import InvalidCustomField
from crm.models import Company, Contact, CustomField, ImportJob, Lead, Record
from crm.permissions import COMPANY_CREATE, COMPANY_VIEW, IMPORT, UPDATE
from crm.tagging import may_create_tags, tags_found
from integrations import outbox
from integrations.models import OutboxEvent
from rbac.access import Access, access_for
from rbac.actor import actor_identity, can_reach

from .fields import CUSTOM_PREFIX, DEDUPE_KEYS, MODELS, UNIQUE_KEYS, CellError, cleaner, targets
from .files import RowProblem, Unreadable, cell_text, is_blank

Problem = tuple[str, str, str]  # (field, code, message)
V = TypeVar("V")
_encoder = DjangoJSONEncoder()
# As ``DjangoJSONEncoder().encode`` (the C encoder, Django's conversions for dates, decimals, UUIDs...): a bound
# method, so a payload costs one call.
_dumps = json.JSONEncoder(default=_encoder.default).encode
# ``json``'s C encoder factory (None without the C accelerator); private, so typeshed does not declare it.
_c_make_encoder: Callable[..., Any] | None = getattr(json.encoder, "c_make_encoder", None)


def _dumper() -> Callable[[dict], str]:
    """As ``_dumps``, with one C encoder made for every payload it dumps: ``JSONEncoder.encode`` makes one per call,
    which costs as much as encoding a contact's payload."""
    if _c_make_encoder is None:  # pragma: no cover - CPython always has it
        return _dumps
    encode = _c_make_encoder(
        {}, _encoder.default, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    join = "".join
    return lambda payload: join(encode(payload, 0))


# How a column's value lands in a row: the field's value, a custom field, the tags, the company, the owner.
VALUE, CUSTOM, TAGS, COMPANY, OWNER = range(5)


@dataclass
class Row:
    """A valid row: its values by model attribute, custom field values, tag names, company name, dedupe key."""

    number: int
    cells: list
    values: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    tags: list[str] | None = None
    company: str = ""
    key: str = ""


@dataclass
class ImportSetup:
    """What a running job needs for every row: the importer's access, the columns and their cleaners."""

    record_type: str
    model: type[Record]  # the record type's model (``fields.MODELS``)
    access: Access
    organization: Any
    policy: str
    file_format: str
    width: int
    columns: list[tuple[int, str, Callable[[str], Any], int, str]]  # (position, target, cleaner, slot, key)
    definitions: dict[str, CustomField]
    custom_required: bool  # some custom field is required (a row without custom values may still fail)
    key_field: str
    actor_id: int | None
    actor_label: str
    defaults: dict[str, Any]  # attribute → default of every column a new record gets
    attnames: list[str]  # the concrete fields, in the order of ``outbox.snapshot``
    id_sequence: str  # the sequence of the model's ids (new records' ids are reserved from it)

    @property
    def name(self) -> str:
        return str(self.model._meta.model_name)

    @property
    def unique(self) -> type[Duplicate] | None:
        """The error of a duplicate key, where the key is unique (a contact's e-mail, a company's domain)."""
        return UNIQUE_KEYS.get(self.record_type)

    @property
    def dedupes(self) -> bool:
        """Rows are matched to existing records by their key: under the skip and update policies, and under the
        create policy where the key is unique (a match is then refused)."""
        return self.policy != DedupePolicy.CREATE or self.unique is not None


def setup_for(job: ImportJob, header: list[str]) -> ImportSetup:
    organization = connection.tenant
    access = None
    if job.created_by_id is not None:
        access = access_for(user=job.created_by, organization=organization)
    if access is None or access.scope(IMPORT[job.record_type]) is None:
        raise Unreadable("The person who started the import may no longer import these records.")
    definitions = custom_fields.definitions(job.record_type)
    model = MODELS[job.record_type]
    members: dict[str, int] = {}
    if "owner" in job.mapping.values():
        from rbac.selectors import members_of

        active = members_of(organization=organization).filter(is_active=True)
        members = {email.lower(): user_id for email, user_id in active.values_list("user__email", "user_id")}
    positions = {name: index for index, name in enumerate(header) if name}
    known = set(targets(job.record_type, definitions))
    columns = []
    for column, target in job.mapping.items():
        if column not in positions or target not in known:
            raise Unreadable(f"The column {column!r} or the field {target!r} no longer exists.")
        clean_cell = cleaner(model, job.record_type, target, definitions, members)
        columns.append((positions[column], target, clean_cell, *_slot(target)))
    columns.sort(key=lambda column: column[0])  # problems are reported in the file's column order
    concrete = model._meta.concrete_fields
    defaults = {f.attname: f.get_default() for f in concrete if not f.primary_key}
    actor_id, actor_label = actor_identity(access)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [model._meta.db_table, model._meta.pk.column])
        (id_sequence,) = cursor.fetchone()
    return ImportSetup(
        record_type=job.record_type,
        model=model,
        access=access,
        organization=organization,
        policy=job.dedupe_policy,
        file_format=job.file_format,
        width=len(header),
        columns=columns,
        definitions=definitions,
        custom_required=any(definition.required for definition in definitions.values()),
        key_field=DEDUPE_KEYS[job.record_type],
        actor_id=actor_id,
        actor_label=actor_label,
        defaults=defaults,
        attnames=[f.attname for f in concrete],
        id_sequence=id_sequence,
    )


def _slot(target: str) -> tuple[int, str]:
    if target.startswith(CUSTOM_PREFIX):
        return CUSTOM, target[len(CUSTOM_PREFIX) :]
    if target == "owner":
        return OWNER, "owner_id"
    return {"tags": TAGS, "company": COMPANY}.get(target, VALUE), target


def clean(setup: ImportSetup, number: int, cells: list | RowProblem) -> Row | list[Problem]:
    """A row's values, or its problems."""
    if isinstance(cells, RowProblem):
        return [("", cells.code, cells.message)]
    if setup.file_format == "csv" and len(cells) != setup.width:
        if len(cells) < setup.width or not is_blank(cells[setup.width :]):
            return [("", "malformed_row", f"Expected {setup.width} cells, found {len(cells)}.")]
    row = Row(number=number, cells=cells)
    problems = []
    size = len(cells)
    values = row.values
    for index, target, clean_cell, slot, key in setup.columns:
        if index >= size:
            continue
        raw = cells[index]
        if raw.__class__ is str:  # ``cell_text`` inlined for text (every CSV cell): a call less per cell
            text = raw.strip()
            if len(text) > 1 and text[0] == "'" and text[1] in "=+-@":
                text = text[1:]
        else:
            text = cell_text(raw)
        if not text:
            continue
        try:
            value = clean_cell(text)
        except CellError as exc:
            problems.append((target, exc.code, exc.message))
            continue
        if slot in (VALUE, OWNER):
            values[key] = value
        elif slot == CUSTOM:
            if value is not None:
                row.custom[key] = value
        elif slot == TAGS:
            row.tags = value
        else:
            row.company = value
    if problems:
        return problems
    row.key = row.values.get(setup.key_field, "")
    return row


@dataclass
class Outcome:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[tuple[int, list, list[Problem]]] = field(default_factory=list)

    def fail(self, row: Row, problem: Problem) -> None:
        self.errors.append((row.number, row.cells, [problem]))


@dataclass
class _New:
    values: dict[str, Any]  # every column of the new record, by attribute
    tag_ids: set[int]


@dataclass
class _Change:
    record: Record
    changes: dict[str, list] = field(default_factory=dict)
    tag_ids: set[int] = field(default_factory=set)


# --- lookups ---


def _contacts_room(setup: ImportSetup) -> int | None:
    """How many contacts the plan still allows (None: no limit), under the limit's lock until commit
    (``billing.services.locked_limit``, as every count against a limit), so concurrent creates cannot pass it."""
    value = locked_limit(organization=setup.organization, limit=Limit.CONTACTS)
    if value is None:
        return None
    counter = counter_for(Limit.CONTACTS)
    used = counter(setup.organization) if counter is not None else Contact.objects.count()
    return max(0, value - used)


class _AnyLine(Lookup):
    """``field = ANY(string_to_array(%s, E'\\n'))``: the keys as one parameter, one key a line. ``__in`` sends a
    parameter per key and a list parameter is quoted element by element, some 5 µs a key on the client; one
    string is quoted at once. Dedupe keys (validated e-mail addresses and domains) never hold a line break."""

    lookup_name = "any_line"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} = ANY(string_to_array({rhs}, E'\\n'))", [*lhs_params, *rhs_params]


def _matches(setup: ImportSetup, keys: set[str]) -> dict[str, Record]:
    """Existing records by dedupe key, in one query; the oldest wins where keys repeat (leads).

    The query probes the key's index, one probe a key, whatever the table's statistics say. An import fills the
    table faster than autovacuum analyses it, and with the statistics of the smaller table it was PostgreSQL reads
    the whole table for every batch, longer at every batch (15 ms a batch at 100,000 new contacts against 3 ms,
    and ten times that at a million). So sequential scans are off for this query (``local_settings``); it has no
    ``ORDER BY``, which the primary key's index would serve by reading every row (:func:`_oldest` picks the
    oldest); and it says that keys are never blank, without which the partial unique index on contacts' e-mail
    (blank addresses left out) is out of reach: PostgreSQL cannot infer it from a list of more than 100 keys."""
    if not keys:
        return {}
    key_field = setup.key_field
    matching = _AnyLine(F(key_field), "\n".join(sorted(keys)))
    queryset = setup.model.objects.filter(matching).exclude(**{key_field: ""})
    if setup.policy == DedupePolicy.UPDATE:
        queryset = queryset.select_for_update(of=("self",))
    with local_settings(enable_seqscan="off"):
        return _oldest((getattr(record, key_field), record.pk, record) for record in queryset)


def _oldest(rows: Iterable[tuple[str, int, V]]) -> dict[str, V]:
    """``{key: value}`` from ``(key, id, value)`` rows; the row with the smallest id wins where keys repeat."""
    found: dict[str, tuple[int, V]] = {}
    for key, pk, value in rows:
        if key not in found or pk < found[key][0]:
            found[key] = (pk, value)
    return {key: value for key, (_pk, value) in found.items()}


def _existing_tags(setup: ImportSetup, records: Iterable[Record]) -> dict[int, dict[int, str]]:
    """``{record id: {tag id: name}}`` for the matched records, in one query."""
    through, name = setup.model.tags.through, setup.name
    found: dict[int, dict[int, str]] = {}
    ids = [record.pk for record in records]
    rows = through._default_manager.filter(**{f"{name}_id__in": ids}).values_list(f"{name}_id", "tag_id", "tag__name")
    for record_id, tag_id, tag_name in rows:
        found.setdefault(record_id, {})[tag_id] = tag_name
    return found


def _event(event_type: str, subject_type: str, subject_id, payload: dict) -> tuple[str, str, str, str]:
    """An event of the batch: its type, subject and payload (JSON); ``write`` writes them together."""
    return (event_type, subject_type, str(subject_id), _dumps(payload))


def _new_uuids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs, as ``uuid.uuid4`` makes them, in hex: one ``urandom`` per batch."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = bytes(byte & 0x0F | 0x40 for byte in raw[6::16])  # version 4
    raw[8::16] = bytes(byte & 0x3F | 0x80 for byte in raw[8::16])  # RFC 4122 variant
    text = raw.hex()
    return [text[start : start + 32] for start in range(0, 32 * count, 32)]


def _companies(setup: ImportSetup, rows: list[Row], events: list[tuple], *, create: bool) -> dict[str, int] | None:
    """Ids of the contacts' companies by lower-cased name: companies the importer sees, else new ones. Without
    ``create``, None when some would be created."""
    wanted = {row.company.lower(): row.company for row in rows if row.company}
    if not wanted:
        return {}
    visible = Company.objects.visible_to(setup.access, COMPANY_VIEW).annotate(lname=Lower("name"))
    # As ``_matches``: the import may be creating these companies faster than they are analysed.
    with local_settings(enable_seqscan="off"):
        found = _oldest(visible.filter(lname__in=list(wanted)).values_list("lname", "pk", "pk"))
    missing = [name for lname, name in wanted.items() if lname not in found]
    if missing and setup.access.scope(COMPANY_CREATE) is not None:
        if not create:
            return None
        for company in Company.objects.bulk_create([Company(name=name, owner_id=setup.actor_id) for name in missing]):
            found[company.name.lower()] = company.pk
            events.append(_event("company.created", "company", company.pk, outbox.snapshot(company)))
    return found


# --- decisions ---


def _custom_merged(setup: ImportSetup, existing: dict, values: dict) -> dict:
    """As ``custom_fields.clean_values`` (values already coerced): known keys of ``existing`` under ``values``,
    required fields present. Raises :class:`InvalidCustomField`."""
    merged = {key: value for key, value in existing.items() if key in setup.definitions}
    merged.update(values)
    for key, definition in setup.definitions.items():
        if merged.get(key) is None:
            merged.pop(key, None)
            custom_fields.coerce(definition, None)  # raises for a required field
    return merged


def _custom_problem(exc: InvalidCustomField) -> Problem:
    errors = exc.extra.get("errors") or [{"field": "custom_fields"}]
    return (errors[0]["field"], exc.code, exc.detail)


def _draft(setup: ImportSetup, values: dict, row: Row) -> dict[str, Any] | Problem:
    """Every column of a new record from the row: its values over the model's defaults."""
    if setup.record_type == RecordType.CONTACT:
        if not (values.get("first_name") or values.get("last_name") or values.get("email")):
            return ("", "required", "A contact needs a first name, a last name or an e-mail address.")
    elif not values.get("name"):
        return ("name", "required", "This field is required.")
    try:
        custom = _custom_merged(setup, {}, row.custom) if row.custom or setup.custom_required else {}
    except InvalidCustomField as exc:
        return _custom_problem(exc)
    draft = {**setup.defaults, "owner_id": setup.actor_id, **values, "custom_fields": custom}
    if setup.record_type != RecordType.COMPANY and "source" not in values:
        draft["source"] = LeadSource.IMPORT
    return draft


def _diff(setup: ImportSetup, current: Callable[[str], Any], values: dict, row: Row) -> dict[str, Any] | Problem:
    """The row's values that differ from the record's (``current`` reads its attributes)."""
    if row.custom:
        try:
            merged = _custom_merged(setup, current("custom_fields") or {}, row.custom)
        except InvalidCustomField as exc:
            return _custom_problem(exc)
        values = {**values, "custom_fields": merged}
    return {name: value for name, value in values.items() if current(name) != value}


@dataclass
class Work:
    """One batch: its valid rows, what their decisions need from the database (:func:`plan`), what they decided
    (:func:`decide`) and the outcome so far (the rows that failed to clean are in it already)."""

    rows: list[Row]
    outcome: Outcome
    matches: dict[str, Record] = field(default_factory=dict)
    company_ids: dict[str, int] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)  # by lower-cased name
    existing_tags: dict[int, dict[int, str]] = field(default_factory=dict)
    room: int | None = None
    events: list[tuple] = field(default_factory=list)
    creates: list[_New] = field(default_factory=list)
    changed: list[_Change] = field(default_factory=list)


def plan(setup: ImportSetup, rows: list[Row], outcome: Outcome, *, early: bool = False) -> Work | None:
    """The lookups a batch's decisions need: matching records, companies, tags, the contacts limit.

    ``early``: in the transaction of the batch before, after its writes (so it sees them), for decisions made while
    that transaction commits (``crm.imports.jobs``). Only what stays true once that transaction ends may be planned
    so: None when the batch would lock the records it updates (the update policy), create companies (their events
    belong to this batch's transaction) or count against a contacts limit (whose lock lasts one transaction)."""
    contacts = setup.record_type == RecordType.CONTACT
    # What rules an early plan out is asked first, so that the batch's own plan does not repeat its lookups.
    if early and (setup.policy == DedupePolicy.UPDATE or (contacts and _contacts_room(setup) is not None)):
        return None
    work = Work(rows, outcome)
    if contacts:
        company_ids = _companies(setup, rows, work.events, create=not early)
        if company_ids is None:
            return None
        work.company_ids = company_ids
    if setup.dedupes:
        work.matches = _matches(setup, {row.key for row in rows if row.key})
    wanted_tags = sorted({tag for row in rows for tag in row.tags or []})
    # Unknown tags are created only for an importer who may manage tags; anyone else's rows naming one fail.
    work.tags = tags_found(wanted_tags, create=may_create_tags(setup.access))[0] if wanted_tags else {}
    if work.tags and setup.policy == DedupePolicy.UPDATE and work.matches:
        work.existing_tags = _existing_tags(setup, work.matches.values())
    if contacts and not early:
        work.room = _contacts_room(setup)
    return work


def still_planned(setup: ImportSetup) -> bool:
    """Whether a batch planned early may be written as decided, in its own transaction: no contacts limit has come
    into force since (it takes the limit's lock if one has, and the batch is then planned again)."""
    return setup.record_type != RecordType.CONTACT or _contacts_room(setup) is None


def decide(setup: ImportSetup, work: Work) -> None:
    """Create, update or skip each row, in the file's order: no query (the plan has what it needs)."""
    outcome, matches, company_ids, room = work.outcome, work.matches, work.company_ids, work.room
    tag_ids = {name: tag.pk for name, tag in work.tags.items()}
    unique, dedupes = setup.unique, setup.dedupes
    update_permission = UPDATE[setup.record_type]
    creates = work.creates
    pending: dict[str, _New] = {}
    updates: dict[int, _Change] = {}
    for row in work.rows:
        values = row.values
        if row.company:
            company_id = company_ids.get(row.company.lower())
            if company_id is None:
                outcome.fail(row, ("company", "unknown_company", "No such company, and you may not create one."))
                continue
            values = {**values, "company_id": company_id}
        row_tags: set[int] = set()
        if row.tags:
            lowered = [tag.lower() for tag in row.tags]
            if not all(name in tag_ids for name in lowered):
                names = ", ".join(repr(tag) for tag, name in zip(row.tags, lowered, strict=True) if name not in tag_ids)
                outcome.fail(row, ("tags", "unknown_tag", f"No tag is named {names}, and you may not create tags."))
                continue
            row_tags = {tag_ids[name] for name in lowered}
        owner_id = values.get("owner_id")
        if owner_id not in (None, setup.actor_id) and not can_reach(setup.access, update_permission, owner_id=owner_id):
            outcome.fail(row, ("owner", "out_of_scope", "You may not give records to this member."))
            continue
        new = pending.get(row.key) if dedupes and row.key else None
        match = matches.get(row.key) if dedupes and row.key and new is None else None

        if new is None and match is None:
            if room is not None and room <= 0:
                outcome.fail(row, ("", "plan_limit_reached", "Your plan's contacts limit is reached."))
                continue
            draft = _draft(setup, values, row)
            if isinstance(draft, tuple):
                outcome.fail(row, draft)
                continue
            if room is not None:
                room -= 1
            new = _New(draft, row_tags)
            creates.append(new)
            if row.key:
                pending[row.key] = new
            outcome.created += 1
        elif setup.policy == DedupePolicy.SKIP:
            outcome.skipped += 1
        elif setup.policy == DedupePolicy.CREATE:  # a unique key: a contact's e-mail, a company's domain
            assert unique is not None, "under the create policy only a unique key dedupes"
            outcome.fail(row, (setup.key_field, unique.code, unique.title))
        elif new is not None:  # created earlier in this batch: the row's values join the new record
            diff = _diff(setup, new.values.__getitem__, values, row)
            if isinstance(diff, tuple):
                outcome.fail(row, diff)
                continue
            grew = not row_tags <= new.tag_ids
            new.values.update(diff)
            new.tag_ids |= row_tags
            if diff or grew:
                outcome.updated += 1
            else:
                outcome.skipped += 1
        else:
            assert match is not None, "a row that neither creates nor joins a new record matched one"
            if not can_reach(setup.access, update_permission, owner_id=match.owner_id):
                outcome.fail(row, (setup.key_field, "out_of_scope", "A matching record exists that you may not edit."))
                continue
            if (
                isinstance(match, Lead)
                and match.status == LeadStatus.CONVERTED
                and values.get("status", match.status) != match.status
            ):
                outcome.fail(row, ("status", "invalid_lead_transition", "The lead is converted."))
                continue
            diff = _diff(setup, functools.partial(getattr, match), values, row)
            if isinstance(diff, tuple):
                outcome.fail(row, diff)
                continue
            change = updates.setdefault(match.pk, _Change(match))
            for attname, value in diff.items():
                change.changes.setdefault(attname, [getattr(match, attname), value])[1] = value
                setattr(match, attname, value)
            added = row_tags - set(work.existing_tags.get(match.pk, {})) - change.tag_ids
            change.tag_ids |= added
            if diff or added:
                outcome.updated += 1
            else:
                outcome.skipped += 1
    work.changed = [change for change in updates.values() if change.changes or change.tag_ids]


def write(setup: ImportSetup, work: Work, meanwhile: Callable[[], object] | None = None) -> None:
    """Write what :func:`decide` decided, and the events, in the caller's transaction.

    ``meanwhile`` is the caller's own work (the job reads and checks the next batch's rows), a step at a time while
    PostgreSQL takes the events' ``COPY``, the largest write of a batch: the server stores rows as they arrive, so
    the two sides work at once instead of in turn."""
    now = timezone.now()
    events = work.events
    # ``COPY`` takes ``now`` as ISO text: psycopg spends some 5 µs on each datetime it converts, once per column.
    now_text = now.isoformat()
    if work.creates:
        _insert(setup, work.creates, events, now, now_text)
    if work.changed:
        tag_names = {tag.pk: tag.name for tag in work.tags.values()}
        _update(setup, work.changed, work.existing_tags, tag_names, events, now)
    if events:
        actor_id, actor_label = setup.actor_id, setup.actor_label
        _copy(
            OutboxEvent,
            ["id", "type", "subject_type", "subject_id", "actor_id", "actor_label", "payload", "occurred_at"],
            (
                (event_id, event_type, subject_type, subject_id, actor_id, actor_label, payload, now_text)
                for event_id, (event_type, subject_type, subject_id, payload) in zip(
                    _new_uuids(len(events)), events, strict=True
                )
            ),
            meanwhile=meanwhile,
        )
        outbox.relay_after_commit()


# --- writes ---


def _copy(
    model: type[models.Model],
    attnames: list[str],
    rows: Iterable[Sequence[Any]],
    meanwhile: Callable[[], object] | None = None,
) -> None:
    """``COPY`` rows (values in the order of ``attnames``) into the model's table in the current schema.

    The rows may be made as they are written: PostgreSQL stores those sent while the next are made. ``meanwhile``,
    if given, is called every ``_MEANWHILE_EVERY`` rows (see ``write``)."""
    quote = connection.ops.quote_name
    column_of = {field.attname: field.column for field in model._meta.concrete_fields}
    columns = ", ".join(quote(column_of[attname]) for attname in attnames)
    sql = f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN"
    with native_cursor(sql) as cursor, cursor.copy(sql) as copying:
        write = copying.write_row
        if meanwhile is None:
            for row in rows:
                write(row)
        else:
            for count, row in enumerate(rows, 1):
                write(row)
                if not count % _MEANWHILE_EVERY:
                    meanwhile()


# Rows written between two steps of ``meanwhile``: about 16 KiB of events, so the connection sends them (psycopg
# buffers 32 KiB) while the caller works.
_MEANWHILE_EVERY = 32


def _reserve_ids(setup: ImportSetup, count: int) -> list[int]:
    """``count`` new ids. The sequence is named once per job: ``pg_get_serial_sequence`` in the query would run
    (parsing and looking the table up) once per id."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [setup.id_sequence, count])
        return [pk for (pk,) in cursor.fetchall()]


def _insert(setup: ImportSetup, creates: list[_New], events: list[tuple], now, now_text: str) -> None:
    model, name = setup.model, setup.name
    attnames, pk_attname = setup.attnames, model._meta.pk.attname
    custom_at, created_at, updated_at = (attnames.index(a) for a in ("custom_fields", "created_at", "updated_at"))
    stamp = _encoder.default(now)  # ``now`` as the payloads show it, converted once for the batch
    event_type = f"{name}.created"
    ids = _reserve_ids(setup, len(creates))
    links: list[tuple[int, int]] = []
    dumps = _dumper()

    def rows() -> Iterator[list]:  # made, with their events, while PostgreSQL stores those before
        for pk, new in zip(ids, creates, strict=True):
            values = new.values
            values[pk_attname] = pk
            values["created_at"] = values["updated_at"] = stamp
            payload = {attname: values[attname] for attname in attnames}  # as ``outbox.snapshot`` gives
            events.append((event_type, name, str(pk), dumps(payload)))
            row = [*payload.values()]  # in the order of ``attnames``
            row[created_at] = row[updated_at] = now_text
            row[custom_at] = dumps(row[custom_at]) if row[custom_at] else "{}"
            for tag in new.tag_ids:
                links.append((pk, tag))
            yield row

    _copy(model, attnames, rows())
    if links:
        _copy(model.tags.through, [f"{name}_id", "tag_id"], links)


def _update(
    setup: ImportSetup, changed: list[_Change], existing_tags: dict, tag_names: dict[int, str], events, now
) -> None:
    model, name = setup.model, setup.name
    through = model.tags.through
    links = []
    for change in changed:
        change.record.updated_at = now
        if change.tag_ids:
            before = existing_tags.get(change.record.pk, {})
            change.changes["tags"] = sorted({*before.values(), *(tag_names[tag] for tag in change.tag_ids)})
            links += [through(**{f"{name}_id": change.record.pk, "tag_id": tag}) for tag in change.tag_ids]
        payload = {"id": change.record.pk, "changes": change.changes}
        events.append(_event(f"{name}.updated", name, change.record.pk, payload))
    columns = {model._meta.get_field(attname).name for change in changed for attname in change.changes} - {"tags"}
    model.objects.bulk_update([change.record for change in changed], [*sorted(columns), "updated_at"], batch_size=200)
    if links:
        through._default_manager.bulk_create(links, ignore_conflicts=True)
