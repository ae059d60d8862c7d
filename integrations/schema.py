"""OpenAPI post-processing: the webhook body and each event type's ``data`` as components.

Register in ``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]`` (after the enum hook)::

    "integrations.schema.add_webhook_components",

Components: ``WebhookEvent`` (every request body we send) and ``<Type>Data`` per event type (e.g.
``LeadCreatedData`` for ``lead.created``). The document is OpenAPI 3.0, which has no ``webhooks`` section, so
the requests we send are also listed under ``x-webhooks`` (shown by ReDoc), one per event type.
"""

from __future__ import annotations

from typing import Any

from .events import EVENTS, envelope_schema, payload_schema

ENVELOPE = "WebhookEvent"
SIGNATURE_HEADERS = {
    "webhook-id": "msg_<event id hex>: the same on every attempt of a delivery; deduplicate on it.",
    "webhook-timestamp": "Unix seconds when this attempt was signed; refuse stale ones (e.g. > 5 min).",
    "webhook-signature": "Space-separated `v1,<base64 HMAC-SHA256 of '{webhook-id}.{webhook-timestamp}.{body}'>` "
    "(two during 24 h after a secret rotation). Verify with any Standard Webhooks library.",
}


def component_name(event_type: str) -> str:
    """``deal.stage_changed`` → ``DealStageChangedData``."""
    words = event_type.replace(".", "_").split("_")
    return "".join(word.capitalize() for word in words) + "Data"


def to_openapi(schema: Any) -> Any:
    """JSON Schema 2020-12 → the OpenAPI 3.0 dialect: ``type: [x, "null"]`` becomes ``nullable``."""
    if isinstance(schema, list):
        return [to_openapi(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$schema":
            continue
        if key == "type" and isinstance(value, list):
            kinds = [kind for kind in value if kind != "null"]
            if len(kinds) == 1:
                converted["type"] = kinds[0]
            if "null" in value:
                converted["nullable"] = True
            continue
        if key in ("properties",):
            converted[key] = {name: to_openapi(item) for name, item in value.items()}
        else:
            converted[key] = to_openapi(value)
    return converted


def add_webhook_components(result, generator, request, public):
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    envelope = to_openapi(envelope_schema())
    envelope["description"] = "The body of every webhook request. " + " ".join(
        f"`{name}`: {text}" for name, text in SIGNATURE_HEADERS.items()
    )
    schemas[ENVELOPE] = envelope
    webhooks: dict[str, Any] = {}
    for event_type, description in EVENTS.items():
        name = component_name(event_type)
        schemas[name] = {**to_openapi(payload_schema(event_type)), "description": description}
        body = {
            "allOf": [
                {"$ref": f"#/components/schemas/{ENVELOPE}"},
                {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "enum": [event_type]},
                        "data": {"$ref": f"#/components/schemas/{name}"},
                    },
                },
            ]
        }
        webhooks[event_type] = {
            "post": {
                "operationId": f"webhook_{event_type.replace('.', '_')}",
                "summary": description,
                "tags": ["webhook events"],
                "parameters": [
                    {
                        "name": header,
                        "in": "header",
                        "required": True,
                        "description": text,
                        "schema": {"type": "string"},
                    }
                    for header, text in SIGNATURE_HEADERS.items()
                ],
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {"2XX": {"description": "Received. Any other answer is retried."}},
            }
        }
    result["x-webhooks"] = webhooks
    return result
