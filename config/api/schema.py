"""The OpenAPI document, true to what the API does. Generation rules (``AutoSchema``) and post-processing
(``postprocess_schema``) live here, once for every endpoint:

- One list shape: a GET answering many objects is a collection, paginated with the project's page-number
  pagination (``{count, next, previous, results}``) and documented so; an action answering an array otherwise
  (a POST) is documented as a plain array.
- List filters, search and ordering are documented only on the actions that apply them: ``list`` and those a view
  names in ``filtered_actions`` (statistics over the filtered list), never on a record's timeline.
- Authentication: a bearer token with the organization named by the ``X-Organization`` header (one security
  scheme, so Swagger's *Authorize* covers it), or an API key, which names its organization itself; endpoints
  about the signed-in person take a bearer token only; public endpoints none.
- Every operation documents the problem-details errors it can answer.
"""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema

from .pagination import PageNumberPagination
from .parsers import max_body_bytes

JWT, API_KEY, ORGANIZATION = "jwtAuth", "apiKeyAuth", "organization"

PROBLEM_SCHEMA = {
    "type": "object",
    "description": (
        "RFC 9457 problem details. `code` is stable and machine-readable: the class of error a client branches "
        "on (`validation_error`, `duplicate`, `conflict`, `not_found`, `permission_denied`, …, or a domain code "
        "such as `lead_already_converted`). An error about specific input fields always carries `errors[]`, "
        "one entry per field with that field's own code (`required`, `does_not_exist`, `duplicate_email`, …)."
    ),
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "example": "validation_error"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "The fields at fault, each with its own code: `{field, code, detail}` (`field` is a "
            "body path such as `custom_fields.size` or `tags[2]`, or a query parameter).",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "code": {"type": "string"},
                    "detail": {"type": "string"},
                },
                "required": ["field", "code", "detail"],
            },
        },
        "retry_after": {"type": "integer", "description": "Seconds to wait, for 429 and 503 answers."},
    },
    "required": ["type", "title", "status", "code", "detail"],
}

ERROR_DESCRIPTIONS = {
    "400": "Invalid input: `validation_error` with `errors[]`, or another stable code.",
    "401": "Not authenticated (`not_authenticated`, `authentication_failed`, `token_not_valid`).",
    "403": "Forbidden (`permission_denied`, `feature_not_in_plan`, `plan_limit_reached`).",
    "404": "Not found, or not visible to the caller (`not_found`, `organization_not_found`).",
    "406": "No acceptable representation (`not_acceptable`).",
    "409": "Conflicts with the current state (`conflict`, `duplicate` with `errors[]`, or a domain code).",
    "429": "Too many requests; see `Retry-After`.",
    "500": "Server error (`server_error`).",
    "503": (
        "A dependency is unreachable for a moment (`database_unavailable`; `idempotency_unavailable` for a request "
        "with an `Idempotency-Key`, which was not processed). Retry after `Retry-After` seconds."
    ),
}
BODY_ERROR_DESCRIPTIONS = {
    "413": "The body is larger than {max_bytes:,} bytes (`payload_too_large`; file uploads have their own limit, "
    "`file_too_large`).",
    "415": "Unsupported request media type (`unsupported_media_type`).",
}

ORGANIZATION_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "X-Organization",
    "description": "Slug of the organization a bearer-token request is for (or call `<slug>.<base domain>`). "
    "API keys select their organization themselves.",
}


class AutoSchema(SpectacularAutoSchema):
    def _get_paginator(self):
        # One list shape: every collection (a GET of many) is paginated the same way, whatever the view.
        return PageNumberPagination() if self.method == "GET" else None

    def get_filter_backends(self):
        action = getattr(self.view, "action", None)
        if action is None or action not in getattr(self.view, "filtered_actions", ("list",)):
            return []
        return getattr(self.view, "filter_backends", [])

    def get_auth(self):
        auth = super().get_auth()
        if not auth:
            return auth  # public
        from .viewsets import OrganizationViewSet

        if isinstance(self.view, OrganizationViewSet):
            return [{JWT: [], ORGANIZATION: []}, {API_KEY: []}]
        return [requirement for requirement in auth if API_KEY not in requirement]  # a person, not a key


def postprocess_schema(result, generator, request, public):
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components.setdefault("securitySchemes", {})[ORGANIZATION] = ORGANIZATION_SCHEME
    ref = {"$ref": "#/components/schemas/Problem"}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            errors = dict(ERROR_DESCRIPTIONS)
            if "requestBody" in operation:
                errors.update(
                    {code: text.format(max_bytes=max_body_bytes()) for code, text in BODY_ERROR_DESCRIPTIONS.items()}
                )
            for status_code, description in errors.items():
                response = responses.setdefault(status_code, {"description": description})
                response["content"] = {"application/problem+json": {"schema": ref}}
            for status_code, response in responses.items():  # errors an operation declares itself (402, 502)
                if str(status_code)[:1] in "45" and not response.get("content"):
                    response["content"] = {"application/problem+json": {"schema": ref}}
    return result
