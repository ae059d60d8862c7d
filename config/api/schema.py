"""OpenAPI post-processing: the problem-details error shape and the organization header, documented once."""

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details. `code` is stable and machine-readable.",
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "example": "validation_error"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Field errors, for `validation_error`.",
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
    "400": "Invalid input (`validation_error` with field errors, or another stable code).",
    "401": "Not authenticated (`not_authenticated`, `authentication_failed`, `token_not_valid`).",
    "403": "Forbidden (`permission_denied`, `feature_not_in_plan`, `plan_limit_reached`).",
    "404": "Not found, or not visible to the caller (`not_found`, `organization_not_found`).",
    "409": "Conflicts with the current state.",
    "429": "Too many requests; see `Retry-After`.",
    "500": "Server error (`server_error`).",
    "503": (
        "A dependency is unreachable for a moment (`database_unavailable`; `idempotency_unavailable` for a request "
        "with an `Idempotency-Key`, which was not processed). Retry after `Retry-After` seconds."
    ),
}

ORGANIZATION_HEADER = {
    "name": "X-Organization",
    "in": "header",
    "required": False,
    "description": "Slug of the organization the request is for (alternatively use `<slug>.<base domain>`).",
    "schema": {"type": "string"},
}

PUBLIC_PREFIXES = ("/api/v1/auth/", "/api/v1/plans/")


def add_problem_responses(result, generator, request, public):
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status_code, description in ERROR_DESCRIPTIONS.items():
                response = responses.setdefault(status_code, {"description": description})
                response["content"] = {"application/problem+json": {"schema": ref}}
            if not path.startswith(PUBLIC_PREFIXES) and path != "/api/v1/organizations/":
                parameters = operation.setdefault("parameters", [])
                if not any(p.get("name") == "X-Organization" for p in parameters):
                    parameters.append(ORGANIZATION_HEADER)
    return result
