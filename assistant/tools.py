"""The tool registry: what the co-pilot (and the MCP server) may call, one door for both.

Each tool is a selector or service call run with the caller's :class:`rbac.access.Access`, so role permission,
record scope and plan features decide exactly as they do for the API:

- a tool whose permission or plan feature the caller lacks is not offered at all (the model never sees it);
- a record outside the caller's scope is the API's own 404 (``not_found``), whatever id the model asks for;
- a write tool never writes when the model calls it: :func:`call` validates it and returns a *proposal*, which
  :func:`perform` carries out only after the user confirms it, as the user.

Results are JSON-able data plus the records they used (``references``: type, id, name). The model receives them
as tool messages, quoted JSON, never as instructions.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import CharField, F, IntegerField, Q, Value
from django.utils import timezone
from rest_framework import serializers

from analytics import selectors as analytics_selectors
from analytics.actions import NextActions
from analytics.periods import PRESETS, Period, local_date, preset, time_zone_of
from analytics.permissions import REPORT_VIEW
from billing.features import Feature
from config.api.errors import DomainError, NotFound
from crm import selectors as crm_selectors
from crm import services as crm_services
from crm.choices import ActivityKind, LeadStatus
from crm.models import Activity, Company, Contact, Lead
from pipelines import selectors as pipeline_selectors
from pipelines import services as pipeline_services
from pipelines.models import Deal, Pipeline, Stage
from pipelines.permissions import DEAL_MOVE_STAGE, DEAL_VIEW, PIPELINE_VIEW
from rbac.access import Access
from tenants.selectors import current_organization

LEAD_VIEW, CONTACT_VIEW, COMPANY_VIEW = "crm.lead.view", "crm.contact.view", "crm.company.view"
ACTIVITY_VIEW, ACTIVITY_CREATE = "crm.activity.view", "crm.activity.create"
LEAD_UPDATE, LEAD_CONVERT = "crm.lead.update", "crm.lead.convert"

SEARCH_LIMIT = 10
TIMELINE_LIMIT = 20


# --- the registry ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    data: Any
    references: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Draft:
    """What a write tool would do: shown to the user, stored as a proposal, done only when confirmed."""

    summary: str
    arguments: dict[str, Any]
    references: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[serializers.Serializer]
    #: The caller needs every one of these (``any_of``: at least one of them).
    permissions: tuple[str, ...]
    run: Callable[[Access, dict[str, Any]], Result | Draft]
    feature: str | None = None
    any_of: bool = False
    #: Write tools: ``run`` returns a :class:`Draft`; ``perform`` carries it out once the user confirms.
    perform: Callable[[Access, dict[str, Any]], dict[str, Any]] | None = None

    @property
    def writes(self) -> bool:
        return self.perform is not None

    def available_to(self, access: Access) -> bool:
        held = [access.scope(code) is not None for code in self.permissions]
        if not (any(held) if self.any_of else all(held)):
            return False
        return self.feature is None or access.entitlements.has(self.feature)

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the arguments (built once per tool; shared, not to be changed)."""
        return _schema_of(self.arguments)

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.json_schema()},
        }


REGISTRY: dict[str, Tool] = {}


def register(tool: Tool) -> Tool:
    if tool.name in REGISTRY:
        raise ValueError(f"tool {tool.name} is registered twice")
    REGISTRY[tool.name] = tool
    return tool


def offered(access: Access, *, writes: bool = True) -> list[Tool]:
    """The tools the caller may use, in registry order (write tools only when ``writes``)."""
    return [t for t in REGISTRY.values() if t.available_to(access) and (writes or not t.writes)]


@dataclass
class Outcome:
    """What one tool call gave: the JSON the model reads, and what the co-pilot keeps of it."""

    name: str
    ok: bool
    content: dict[str, Any]
    references: list[dict[str, Any]] = field(default_factory=list)
    draft: Draft | None = None
    code: str = ""


def _problem(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "detail": detail, **extra}}


def call(access: Access, name: str, raw_arguments: str | dict[str, Any]) -> Outcome:
    """Run tool ``name`` for the caller. Never raises for the model's mistakes: an unknown or withheld tool, bad
    arguments, a record out of reach and a refused business rule come back as ``{"error": {code, detail}}`` for
    the model to read. A write tool returns its draft (``Outcome.draft``); nothing is written."""
    tool = REGISTRY.get(name)
    if tool is None or not tool.available_to(access):  # withheld tools are unknown, as they were never offered
        return Outcome(name, False, _problem("unknown_tool", f"There is no tool named {name!r}."), code="unknown_tool")
    if isinstance(raw_arguments, str):
        try:
            raw_arguments = json.loads(raw_arguments or "{}")
        except ValueError:
            return Outcome(
                name, False, _problem("invalid_arguments", "The arguments are not JSON."), code="invalid_arguments"
            )
    if not isinstance(raw_arguments, dict):
        return Outcome(
            name, False, _problem("invalid_arguments", "The arguments must be an object."), code="invalid_arguments"
        )
    arguments = tool.arguments(data=raw_arguments)
    if not arguments.is_valid():
        errors = {key: [str(error) for error in value] for key, value in arguments.errors.items()}
        return Outcome(
            name,
            False,
            _problem("invalid_arguments", "The arguments do not fit the tool.", errors=errors),
            code="invalid_arguments",
        )
    try:
        done = tool.run(access, dict(arguments.validated_data))
    except DomainError as error:
        body = error.problem()
        return Outcome(name, False, _problem(body["code"], body["detail"]), code=body["code"])
    if isinstance(done, Draft):
        content = {"proposed": True, "summary": done.summary, "note": "The user must confirm this action."}
        return Outcome(name, True, content, references=done.references, draft=done)
    return Outcome(name, True, {"result": done.data}, references=done.references)


def perform(access: Access, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Carry out a confirmed write as the caller: the tool must still be his, its records still within reach."""
    tool = REGISTRY.get(name)
    if tool is None or tool.perform is None or not tool.available_to(access):
        raise NotFound("This action is no longer available to you.")
    checked = tool.arguments(data=arguments)
    checked.is_valid(raise_exception=True)
    return tool.perform(access, dict(checked.validated_data))


def encode(content: Any, *, limit: int) -> str:
    """Tool output as the JSON the model reads, cut at ``limit`` characters (still JSON: a marked excerpt)."""
    text = json.dumps(content, cls=DjangoJSONEncoder, ensure_ascii=False)
    if len(text) <= limit:
        return text
    size = max(0, limit - 40)
    while True:  # escaping the excerpt lengthens it: shorten until the whole fits
        cut = json.dumps({"truncated": True, "excerpt": text[:size]}, ensure_ascii=False)
        if len(cut) <= limit or size == 0:
            return cut
        size = max(0, size - (len(cut) - limit))


@functools.cache
def _schema_of(arguments: type[serializers.Serializer]) -> dict[str, Any]:
    return _json_schema(arguments())


def _json_schema(serializer: serializers.Serializer) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required = []
    for name, item in serializer.fields.items():
        spec: dict[str, Any] = {"description": str(item.help_text or "")}
        if isinstance(item, serializers.ChoiceField):
            spec.update(type="string", enum=[str(choice) for choice in item.choices])
        elif isinstance(item, serializers.IntegerField):
            spec["type"] = "integer"
        elif isinstance(item, serializers.DateTimeField):
            spec.update(type="string", format="date-time")
        elif isinstance(item, serializers.ListField):
            spec.update(type="array", items={"type": "string"})
        else:
            spec["type"] = "string"
        properties[name] = spec
        if item.required:
            required.append(name)
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


# --- records ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordType:
    model: Any
    permission: str
    name: Callable[..., str]  # the record's ``str()`` from the values of ``name_fields``, in order (search rows)
    name_fields: tuple[str, ...]
    fields: tuple[str, ...]
    search: tuple[str, ...]


RECORDS: dict[str, RecordType] = {
    "lead": RecordType(
        Lead,
        LEAD_VIEW,
        str,
        ("name",),
        ("name", "email", "phone", "company_name", "source", "status", "priority", "estimated_value"),
        ("name", "email", "company_name"),
    ),
    "contact": RecordType(
        Contact,
        CONTACT_VIEW,
        Contact.name_of,
        ("first_name", "last_name", "email"),
        ("first_name", "last_name", "email", "phone", "job_title", "company_id", "status", "lifecycle_stage"),
        ("first_name", "last_name", "email"),
    ),
    "company": RecordType(
        Company, COMPANY_VIEW, str, ("name",), ("name", "domain", "industry", "size", "city", "country"), ("name",)
    ),
    "deal": RecordType(
        Deal,
        DEAL_VIEW,
        str,
        ("title",),
        ("title", "amount", "currency", "pipeline_id", "stage_id", "status", "expected_close_date", "contact_id"),
        ("title",),
    ),
}
NAME_COLUMNS = max(len(spec.name_fields) for spec in RECORDS.values())


def reference(record_type: str, record) -> dict[str, Any]:
    return {"type": record_type, "id": record.pk, "name": str(record)}


def reached(access: Access, record_type: str, pk: int, permission: str | None = None):
    """The record if the caller reaches it under ``permission`` (its view permission by default), else the
    API's 404: an unknown id, another's record and a type the caller may not see answer alike."""
    spec = RECORDS[record_type]
    permission = permission or spec.permission
    record = None
    if access.scope(permission) is not None:
        record = spec.model.objects.visible_to(access, permission).filter(pk=pk).first()
    if record is None:
        raise NotFound()
    return record


def _fields(record_type: str, record) -> dict[str, Any]:
    values = {"type": record_type, "id": record.pk}
    values.update({name: getattr(record, name) for name in RECORDS[record_type].fields})
    values["owner_id"] = record.owner_id
    return values


class _SearchArgs(serializers.Serializer):
    query = serializers.CharField(max_length=200, help_text="Words to look for in names, e-mails and titles.")
    types = serializers.ListField(
        child=serializers.ChoiceField(choices=list(RECORDS)),
        required=False,
        max_length=4,
        help_text="Record types to search (lead, contact, company, deal); all by default.",
    )


def _search(access: Access, args: dict[str, Any]) -> Result:
    """One query: a ``UNION ALL`` of each type's latest matches (the caller's reach), their names' columns only."""
    kinds = [kind for kind in args.get("types") or list(RECORDS) if access.scope(RECORDS[kind].permission) is not None]
    parts = []
    for rank, kind in enumerate(kinds):
        spec = RECORDS[kind]
        match = Q()
        for name in spec.search:
            match |= Q(**{f"{name}__icontains": args["query"]})
        names: list[F | Value] = [F(name) for name in spec.name_fields]
        names += [Value("", output_field=CharField())] * (NAME_COLUMNS - len(names))
        columns = {f"name_{n}": name for n, name in enumerate(names)}
        parts.append(
            spec.model.objects.visible_to(access, spec.permission)
            .filter(match)
            .annotate(found_rank=Value(rank, output_field=IntegerField()), **columns)
            .values_list("found_rank", "pk", *columns)
            .order_by("-pk")[:SEARCH_LIMIT]
        )
    rows = parts[0].union(*parts[1:], all=True).order_by("found_rank", "-pk") if parts else []
    found = []
    for rank, pk, *names in rows:
        spec = RECORDS[kinds[rank]]
        found.append({"type": kinds[rank], "id": pk, "name": spec.name(*names[: len(spec.name_fields)])})
    return Result({"records": found}, [dict(ref) for ref in found])


register(
    Tool(
        name="search_records",
        description="Find leads, contacts, companies and deals by name, e-mail or title (those you may see).",
        arguments=_SearchArgs,
        permissions=(LEAD_VIEW, CONTACT_VIEW, COMPANY_VIEW, DEAL_VIEW),
        any_of=True,
        run=_search,
    )
)


class _RecordArgs(serializers.Serializer):
    type = serializers.ChoiceField(choices=list(RECORDS), help_text="lead, contact, company or deal")
    id = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="The record's id.")


def _get_record(access: Access, args: dict[str, Any]) -> Result:
    record_type = args["type"]
    record = reached(access, record_type, args["id"])
    if record_type == "deal":
        rows = list(pipeline_selectors.deal_timeline(deal=record, access=access)[:TIMELINE_LIMIT])
        timeline = pipeline_selectors.deal_timeline_items(rows)
    else:
        rows = list(crm_selectors.timeline(record=record, access=access)[:TIMELINE_LIMIT])
        timeline = crm_selectors.timeline_items(rows)
    return Result({"record": _fields(record_type, record), "timeline": timeline}, [reference(record_type, record)])


register(
    Tool(
        name="get_record",
        description="One lead, contact, company or deal with its latest timeline (activities and changes).",
        arguments=_RecordArgs,
        permissions=(LEAD_VIEW, CONTACT_VIEW, COMPANY_VIEW, DEAL_VIEW),
        any_of=True,
        run=_get_record,
    )
)


class _NoArgs(serializers.Serializer):
    pass


def _activity_target(activity: Activity) -> dict[str, Any] | None:
    for record_type in ("deal", "lead", "contact", "company"):
        pk = getattr(activity, f"{record_type}_id")
        if pk:
            return {"type": record_type, "id": pk}
    return None


def _my_tasks(access: Access, args: dict[str, Any]) -> Result:
    visible = Activity.objects.visible_to(access, ACTIVITY_VIEW)
    tasks = crm_selectors.open_tasks(visible, user_id=access.user_id, due_before=crm_selectors.task_horizon())[:50]
    items = [{"id": t.pk, "subject": t.subject, "due_at": t.due_at, "on": _activity_target(t)} for t in tasks]
    return Result({"tasks": items, "now": timezone.now()})


register(
    Tool(
        name="my_tasks",
        description=f"Your open tasks that are overdue or due in the next {crm_selectors.MY_TASKS_DAYS} days.",
        arguments=_NoArgs,
        permissions=(ACTIVITY_VIEW,),
        run=_my_tasks,
    )
)


class _PipelineArgs(serializers.Serializer):
    pipeline = serializers.IntegerField(
        min_value=1, max_value=2**63 - 1, required=False, help_text="Pipeline id; the default pipeline if omitted."
    )


def _pipeline_summary(access: Access, args: dict[str, Any]) -> Result:
    pipelines = pipeline_selectors.pipelines()
    pipeline: Pipeline | None = (
        pipelines.filter(pk=args["pipeline"]).first()
        if "pipeline" in args
        else pipelines.filter(is_default=True).first()
    )
    if pipeline is None:
        raise NotFound()
    columns = pipeline_selectors.board(pipeline=pipeline, access=access, per_stage=3)
    references = []
    stages = []
    for column in columns:
        cards = [{"id": card["id"], "title": card["title"], "amount": card["amount"]} for card in column.deals]
        references += [{"type": "deal", "id": card["id"], "name": card["title"]} for card in cards]
        stages.append(
            {
                "stage": column.stage.name,
                "deals": column.count,
                "amount": column.amount,
                "weighted_amount": column.weighted_amount,
                "first_deals": cards,
            }
        )
    return Result({"pipeline": {"id": pipeline.pk, "name": pipeline.name}, "stages": stages}, references)


register(
    Tool(
        name="pipeline_summary",
        description="A pipeline's board: per stage, the deals you may see, their amount and weighted amount.",
        arguments=_PipelineArgs,
        permissions=(PIPELINE_VIEW, DEAL_VIEW),
        run=_pipeline_summary,
    )
)

_REPORTS = {
    "pipeline": lambda actor, period, now: analytics_selectors.pipeline_report(
        actor=actor, period=period, pipeline_id=None, owner_id=None, now=now
    ),
    "leads": lambda actor, period, now: analytics_selectors.leads_report(
        actor=actor, period=period, owner_id=None, now=now
    ),
    "activity": lambda actor, period, now: analytics_selectors.activity_report(
        actor=actor, period=period, owner_id=None, pipeline_id=None, now=now
    ),
}
_PERIODS = list(PRESETS)


class _ReportArgs(serializers.Serializer):
    report = serializers.ChoiceField(choices=list(_REPORTS), help_text="pipeline, leads or activity")
    period = serializers.ChoiceField(choices=_PERIODS, required=False, help_text="this_month by default")


def _report(access: Access, args: dict[str, Any]) -> Result:
    now = timezone.now()
    tz = time_zone_of(current_organization())
    period: Period = preset(args.get("period", "this_month"), today=local_date(now, tz), tz=tz)
    return Result({"report": args["report"], "figures": _REPORTS[args["report"]](access, period, now)})


register(
    Tool(
        name="analytics_report",
        description="Sales figures over the records you may see: the pipeline, leads or activity report.",
        arguments=_ReportArgs,
        permissions=(REPORT_VIEW,),
        run=_report,
    )
)


def _next_actions(access: Access, args: dict[str, Any]) -> Result:
    actions = NextActions(access, tz=time_zone_of(current_organization()))
    items = actions.load(list(actions.mine()[:10]))
    references = [{"type": "deal", "id": item["deal"]["id"], "name": item["deal"]["title"]} for item in items]
    return Result({"next_actions": items}, references)


register(
    Tool(
        name="next_best_actions",
        description="Your deals that need attention most, with the reason and a suggested action.",
        arguments=_NoArgs,
        permissions=(REPORT_VIEW, DEAL_VIEW),
        feature=Feature.FORECAST,
        run=_next_actions,
    )
)


# --- writes: proposed by the model, done when the user confirms --------------------------------------------------


class _ActivityArgs(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ActivityKind.values, help_text="note, call, email, meeting or task")
    subject = serializers.CharField(max_length=200)
    body = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    due_at = serializers.DateTimeField(required=False, help_text="When a task or meeting is due (ISO 8601).")
    record_type = serializers.ChoiceField(choices=list(RECORDS), help_text="What it is about: lead, contact, ...")
    record_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


def _jsonable(args: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(args, cls=DjangoJSONEncoder))


def _draft_activity(access: Access, args: dict[str, Any]) -> Draft:
    record = reached(access, args["record_type"], args["record_id"])
    ref = reference(args["record_type"], record)
    due = f", due {args['due_at']:%Y-%m-%d %H:%M}" if args.get("due_at") else ""
    return Draft(
        f"Log a {args['kind']} “{args['subject']}” on {ref['type']} {ref['name']}{due}", _jsonable(args), [ref]
    )


def _create_activity(access: Access, args: dict[str, Any]) -> dict[str, Any]:
    """An activity on the record the arguments name (``draft_email``'s too: an e-mail activity, not sent)."""
    record = reached(access, args["record_type"], args["record_id"])
    activity = crm_services.activity_create(
        actor=access,
        kind=args["kind"],
        subject=args["subject"],
        body=args.get("body", ""),
        due_at=args.get("due_at"),
        **{f"{args['record_type']}_id": record.pk},
    )
    return {"activity": {"id": activity.pk, "kind": activity.kind, "subject": activity.subject}}


register(
    Tool(
        name="create_activity",
        description="Propose logging a note, call, e-mail, meeting or task on a record (the user confirms).",
        arguments=_ActivityArgs,
        permissions=(ACTIVITY_CREATE,),
        run=_draft_activity,
        perform=_create_activity,
    )
)


class _DraftEmailArgs(serializers.Serializer):
    record_type = serializers.ChoiceField(choices=["lead", "contact", "deal"], help_text="lead, contact or deal")
    record_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    subject = serializers.CharField(max_length=200)
    body = serializers.CharField(max_length=10000)


def _draft_email(access: Access, args: dict[str, Any]) -> Draft:
    record = reached(access, args["record_type"], args["record_id"])
    ref = reference(args["record_type"], record)
    return Draft(f"Save the e-mail draft “{args['subject']}” on {ref['type']} {ref['name']}", _jsonable(args), [ref])


def _save_email_draft(access: Access, args: dict[str, Any]) -> dict[str, Any]:
    return _create_activity(access, {**args, "kind": ActivityKind.EMAIL})


register(
    Tool(
        name="draft_email",
        description="Propose an e-mail draft for a record; confirmed, it is kept on the record's timeline (not sent).",
        arguments=_DraftEmailArgs,
        permissions=(ACTIVITY_CREATE,),
        run=_draft_email,
        perform=_save_email_draft,
    )
)


class _LeadStatusArgs(serializers.Serializer):
    lead_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    status = serializers.ChoiceField(
        choices=[LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.QUALIFIED, LeadStatus.UNQUALIFIED]
    )
    reason = serializers.CharField(max_length=500, required=False, help_text="Why, when disqualifying.")


def _lead_permission(status: str) -> str:
    return LEAD_CONVERT if status in (LeadStatus.QUALIFIED, LeadStatus.UNQUALIFIED) else LEAD_UPDATE


def _draft_lead_status(access: Access, args: dict[str, Any]) -> Draft:
    lead = reached(access, "lead", args["lead_id"], _lead_permission(args["status"]))
    return Draft(
        f"Set lead {lead.name} from {lead.status} to {args['status']}", _jsonable(args), [reference("lead", lead)]
    )


def _update_lead_status(access: Access, args: dict[str, Any]) -> dict[str, Any]:
    lead = reached(access, "lead", args["lead_id"], _lead_permission(args["status"]))
    if args["status"] == LeadStatus.QUALIFIED:
        lead = crm_services.lead_qualify(lead=lead, actor=access)
    elif args["status"] == LeadStatus.UNQUALIFIED:
        lead = crm_services.lead_disqualify(lead=lead, actor=access, reason=args.get("reason", ""))
    else:
        lead = crm_services.lead_update(lead=lead, actor=access, status=args["status"])
    return {"lead": {"id": lead.pk, "status": lead.status}}


register(
    Tool(
        name="update_lead_status",
        description="Propose a lead's new status: contacted, qualified or unqualified (the user confirms).",
        arguments=_LeadStatusArgs,
        permissions=(LEAD_UPDATE,),
        run=_draft_lead_status,
        perform=_update_lead_status,
    )
)


class _MoveDealArgs(serializers.Serializer):
    deal_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    stage_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    reason = serializers.CharField(max_length=500, required=False)


def _stage(deal: Deal, stage_id: int) -> Stage:
    stage = Stage.objects.filter(pk=stage_id, pipeline_id=deal.pipeline_id).first()
    if stage is None:
        raise NotFound("No such stage in the deal's pipeline.")
    return stage


def _draft_move(access: Access, args: dict[str, Any]) -> Draft:
    deal = reached(access, "deal", args["deal_id"], DEAL_MOVE_STAGE)
    stage = _stage(deal, args["stage_id"])
    return Draft(f"Move deal {deal.title} to stage {stage.name}", _jsonable(args), [reference("deal", deal)])


def _move_deal(access: Access, args: dict[str, Any]) -> dict[str, Any]:
    deal = reached(access, "deal", args["deal_id"], DEAL_MOVE_STAGE)
    deal = pipeline_services.deal_move_stage(
        deal=deal, stage=_stage(deal, args["stage_id"]), actor=access, reason=args.get("reason", "")
    )
    return {"deal": {"id": deal.pk, "stage_id": deal.stage_id, "status": deal.status}}


register(
    Tool(
        name="move_deal",
        description="Propose moving a deal to another stage of its pipeline (the user confirms).",
        arguments=_MoveDealArgs,
        permissions=(DEAL_MOVE_STAGE,),
        run=_draft_move,
        perform=_move_deal,
    )
)
