"""The event catalogue: every domain event type the product records, with what it means.

Services record events with :func:`integrations.outbox.record`; an unknown type is a programming error.
Webhook subscriptions and the published catalogue (``GET /api/v1/webhooks/event-types/``) read this, and so
does the OpenAPI document (``integrations/schema.py``): each type's ``data`` is described by a JSON Schema
(draft 2020-12) from :func:`payload_schema`, and every webhook body by :func:`envelope_schema`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

EVENTS: dict[str, str] = {
    "company.created": "A company was created",
    "company.updated": "A company was edited",
    "company.deleted": "A company was deleted",
    "company.merged": "Two companies were merged into one",
    "contact.created": "A contact was created",
    "contact.updated": "A contact was edited",
    "contact.deleted": "A contact was deleted",
    "contact.merged": "Two contacts were merged into one",
    "contact.activated": "A contact was activated",
    "contact.deactivated": "A contact was deactivated",
    "lead.created": "A lead was created",
    "lead.updated": "A lead was edited",
    "lead.deleted": "A lead was deleted",
    "lead.qualified": "A lead was qualified",
    "lead.disqualified": "A lead was disqualified",
    "lead.converted": "A lead was converted into a contact, company and possibly a deal",
    "activity.created": "An activity (note, call, e-mail, meeting, task) was logged",
    "activity.updated": "An activity was edited",
    "activity.deleted": "An activity was deleted",
    "activity.completed": "A task or meeting was completed",
    "deal.created": "A deal was created",
    "deal.updated": "A deal was edited",
    "deal.stage_changed": "A deal moved to another stage",
    "deal.won": "A deal was won",
    "deal.lost": "A deal was lost",
    "deal.reopened": "A closed deal was reopened",
    "deal.deleted": "A deal was deleted",
    "campaign.scheduled": "A campaign was scheduled (now or for later)",
    "campaign.started": "A campaign started sending: its audience was evaluated into one message per recipient",
    "campaign.paused": "A campaign was paused (by someone, or when the plan's monthly messages ran out)",
    "campaign.resumed": "A paused campaign was resumed",
    "campaign.canceled": "A campaign was canceled; its queued messages are skipped",
    "campaign.completed": "Every message of a campaign was sent, skipped or failed",
    "delivery.bounced": "A campaign message bounced or drew a spam complaint",
    "contact.unsubscribed": "A contact opted out of a channel (link, one-click, STOP, complaint, API)",
    "contact.subscribed": "A contact opted in to a channel",
    "analytics.anomaly_detected": "A daily metric fell outside its expected range (analytics)",
    "usage.threshold_reached": "The organization reached 80 % or 100 % of a plan limit (once per limit, threshold "
    "and calendar month)",
    "webhook.ping": "A test event, sent on request to one webhook endpoint only",
}

# Sent only to the endpoint that asked for it: never fanned out to subscriptions, never replayed.
PING = "webhook.ping"
DIRECT_ONLY = frozenset({PING})


def subscribable() -> list[str]:
    """Event types an endpoint can subscribe to (besides ``"*"``)."""
    return [name for name in EVENTS if name not in DIRECT_ONLY]


# --- payload schemas ---

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Events whose data is the record's own column values (``outbox.snapshot``), by subject.
SNAPSHOT_MODELS = {
    "company": "crm.Company",
    "contact": "crm.Contact",
    "lead": "crm.Lead",
    "activity": "crm.Activity",
    "deal": "pipelines.Deal",
}

_ID = {"type": "integer", "description": "The record's id."}
_NULLABLE_ID = {"type": ["integer", "null"]}
_MONEY = {"type": "string", "format": "decimal", "description": 'Decimal amount as a string, e.g. "1250.00".'}
_TIMESTAMP = {"type": "string", "format": "date-time"}


def _obj(properties: dict[str, Any], *, required: list[str] | None = None, description: str = "") -> dict:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required if required is not None else list(properties),
        "additionalProperties": True,
    }
    if description:
        schema["description"] = description
    return schema


def _nullable(schema: dict) -> dict:
    kind = schema.get("type")
    if kind is None:
        return schema
    return {**schema, "type": [kind, "null"] if isinstance(kind, str) else [*kind, "null"]}


def _field_schema(field) -> dict:
    from django.db import models

    if isinstance(field, models.ForeignKey):
        schema: dict[str, Any] = {
            "type": "integer",
            "description": f"Id of the {field.related_model._meta.model_name}.",
        }
    elif isinstance(field, models.BooleanField):
        schema = {"type": "boolean"}
    elif isinstance(field, models.AutoField | models.IntegerField):
        schema = {"type": "integer"}
    elif isinstance(field, models.DecimalField):
        schema = dict(_MONEY)
    elif isinstance(field, models.DateTimeField):
        schema = dict(_TIMESTAMP)
    elif isinstance(field, models.DateField):
        schema = {"type": "string", "format": "date"}
    elif isinstance(field, models.UUIDField):
        schema = {"type": "string", "format": "uuid"}
    elif isinstance(field, models.JSONField):
        schema = (
            {"type": "object", "description": "Custom field values by key."} if field.name == "custom_fields" else {}
        )
    elif isinstance(field, models.DurationField):
        schema = {"type": "string", "description": 'Duration, e.g. "1 02:03:04".'}
    else:
        schema = {"type": "string"}
        if field.choices:
            schema["enum"] = [*([""] if field.blank else []), *(value for value, _ in field.choices)]
    return _nullable(schema) if field.null else schema


def _snapshot_schema(subject: str, verb: str) -> dict:
    from django.apps import apps

    model = apps.get_model(SNAPSHOT_MODELS[subject])
    properties = {field.attname: _field_schema(field) for field in model._meta.concrete_fields}
    return _obj(properties, description=f"The {subject} as it was {verb}: its own column values.")


_CHANGES = _obj(
    {
        "id": _ID,
        "changes": {
            "type": "object",
            "description": "Changed fields: `{field: [before, after]}`; `tags` holds the new list of tag names.",
            "additionalProperties": True,
        },
    }
)
_STAGE_SUMMARY = {
    "id": _ID,
    "stage": {"type": "integer", "description": "Id of the stage the deal is in now."},
    "amount": _MONEY,
    "currency": {"type": "string", "description": "ISO 4217 code."},
}
_REFERENCE = _obj({"id": _ID}, description="The record concerned; more fields may be added.")

_SPECIFIC: dict[str, dict] = {
    "lead.qualified": _obj({"id": _ID, "from": {"type": "string", "description": "The status before."}}),
    "lead.disqualified": _obj(
        {"id": _ID, "from": {"type": "string", "description": "The status before."}, "reason": {"type": "string"}}
    ),
    "deal.stage_changed": _obj(
        {
            "id": _ID,
            "pipeline": {"type": "integer"},
            "from_stage": _NULLABLE_ID,
            "from_stage_name": {"type": ["string", "null"]},
            "to_stage": {"type": "integer"},
            "to_stage_name": {"type": "string"},
            "status": {"type": "string", "enum": ["open", "won", "lost"]},
            "seconds_in_previous_stage": {"type": ["integer", "null"]},
        }
    ),
    "deal.won": _obj({**_STAGE_SUMMARY, "won_at": _TIMESTAMP}),
    "deal.lost": _obj({**_STAGE_SUMMARY, "reason": {"type": "string"}}),
    "deal.reopened": _obj({**_STAGE_SUMMARY, "previous_status": {"type": "string", "enum": ["won", "lost"]}}),
    **{
        f"campaign.{verb}": _obj(
            {
                "id": _ID,
                "name": {"type": "string"},
                "channel": {"type": "string", "enum": ["email", "sms", "whatsapp"]},
                "status": {"type": "string"},
                "segment": {"type": "integer"},
                "scheduled_at": {**_nullable(_TIMESTAMP)},
                "recipients": {"type": "integer", "description": "Messages planned (one per recipient)."},
            },
            description=f"The campaign when it was {verb}.",
        )
        for verb in ("scheduled", "started", "paused", "resumed", "canceled")
    },
    "campaign.completed": _obj(
        {
            "id": _ID,
            "name": {"type": "string"},
            "channel": {"type": "string", "enum": ["email", "sms", "whatsapp"]},
            "status": {"type": "string"},
            "recipients": {"type": "integer"},
            **{name: {"type": "integer"} for name in ("sent", "delivered", "bounced", "failed", "skipped")},
            "unsubscribed": {"type": "integer"},
        },
        required=["id", "name", "channel", "status", "recipients", "sent", "skipped"],
    ),
    "delivery.bounced": _obj(
        {
            "id": _ID,
            "campaign": {"type": "integer"},
            "contact": _NULLABLE_ID,
            "channel": {"type": "string", "enum": ["email", "sms", "whatsapp"]},
            "address": {"type": "string"},
            "kind": {"type": "string", "enum": ["hard", "soft", "complaint"]},
            "description": {"type": "string"},
        }
    ),
    **{
        f"contact.{verb}": _obj(
            {
                "id": _ID,
                "channel": {"type": "string", "enum": ["email", "sms", "whatsapp"]},
                "source": {"type": "string", "description": "Where the consent came from (see the consent ledger)."},
                "campaign": {**_NULLABLE_ID, "description": "The campaign the recipient answered, if any."},
            }
        )
        for verb in ("unsubscribed", "subscribed")
    },
    "analytics.anomaly_detected": _obj(
        {
            "id": _ID,
            "day": {"type": "string", "format": "date", "description": "The organization's local day."},
            "metric": {
                "type": "string",
                "enum": ["leads_created", "deals_created", "won_value", "activities"],
                "description": "The daily metric.",
            },
            "owner": {**_NULLABLE_ID, "description": "The owner whose figures these are; null: the organization."},
            "value": {**_MONEY, "description": "What the day counted (a count or an amount), as a decimal string."},
            "expected": {**_MONEY, "description": "The expected value (trend and weekly pattern)."},
            "lower": {**_MONEY, "description": "Lower end of the expected range."},
            "upper": {**_MONEY, "description": "Upper end of the expected range."},
            "direction": {"type": "string", "enum": ["above", "below"]},
            "score": {"type": "number", "description": "Distance from the expected value, in robust deviations."},
        },
        description="A daily metric outside its expected range (GET /api/v1/analytics/anomalies/).",
    ),
    "usage.threshold_reached": _obj(
        {
            "limit": {"type": "string", "description": "The limit (a key of the plan's `limits`)."},
            "threshold": {"type": "integer", "enum": [80, 100], "description": "Percent of the limit reached."},
            "used": {"type": "integer", "description": "Usage when the threshold was reached."},
            "value": {"type": "integer", "description": "The limit's value."},
            "period_start": {"type": "string", "format": "date", "description": "The calendar month (UTC)."},
        },
        description="A plan limit's threshold reached (GET /api/v1/billing/usage/ shows the figures).",
    ),
    PING: _obj(
        {"endpoint_id": {"type": "integer"}, "message": {"type": "string"}},
        description="Sent by POST /api/v1/webhooks/{id}/ping/ to check that an endpoint receives and verifies.",
    ),
}


@cache
def payload_schema(event_type: str) -> dict:
    """The JSON Schema of the ``data`` of ``event_type`` events."""
    if event_type not in EVENTS:
        raise KeyError(event_type)
    if event_type in _SPECIFIC:
        schema = _SPECIFIC[event_type]
    else:
        subject, _, verb = event_type.partition(".")
        if verb in ("created", "deleted") and subject in SNAPSHOT_MODELS:
            schema = _snapshot_schema(subject, verb)
        elif verb == "updated":
            schema = _CHANGES
        else:
            schema = _REFERENCE
    return {"$schema": SCHEMA_DIALECT, "title": event_type, **schema}


def envelope_schema() -> dict:
    """The JSON Schema of every webhook request body; ``data`` follows :func:`payload_schema` of ``type``."""
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "Webhook",
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid", "description": "The event's id (webhook-id is msg_<hex>)."},
            "type": {"type": "string", "enum": list(EVENTS)},
            "timestamp": {**_TIMESTAMP, "description": "When the event happened."},
            "subject": _obj({"type": {"type": "string"}, "id": {"type": "string"}}),
            "actor": {
                **_nullable(_obj({"id": _NULLABLE_ID, "label": {"type": "string"}})),
                "description": "Who made the change: a member (id, e-mail), an API key (label) or null for the system.",
            },
            "data": {"type": "object", "description": "The event's payload; its schema depends on `type`."},
        },
        "required": ["id", "type", "timestamp", "subject", "actor", "data"],
        "additionalProperties": True,
    }
