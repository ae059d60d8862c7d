"""One error shape for the whole API: RFC 9457 problem details with a stable machine-readable ``code``.

Domain code raises a :class:`DomainError` subclass; DRF's own exceptions and Django's 404/permission
errors are translated here, so every 4xx and 5xx response has the same body::

    {"type": "https://errors.crm.dev/validation_error", "title": "Invalid input.", "status": 400,
     "code": "validation_error", "detail": "...", "errors": [{"field": "email", "code": "required",
     "detail": "This field is required."}]}

The rule for codes (docs/decisions/0010-api-edge.md): the top-level ``code`` is the class of error a client
branches on; the code of each field's failure lives in ``errors[]``; an error about a specific field always
carries ``errors[]``. So an error raised with ``field=`` renders with its class's :attr:`DomainError.field_error`
code at the top (``validation_error``, ``duplicate``, ``conflict``) and its own code in ``errors[]``.
"""

from __future__ import annotations

import logging
import sys
from http import HTTPStatus
from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import set_rollback

from config.outages import RETRY_AFTER_SECONDS, database_unreachable

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://errors.crm.dev/"


class DomainError(Exception):
    """Base of every business-rule error. Subclasses set a stable ``code`` and an HTTP ``status``.

    ``field`` (or the class's own ``field``) names the input the error is about: the answer then carries
    ``errors: [{field, code, detail}]`` with this error's code, and the class of error (:attr:`field_error`) as
    the top-level code. ``code`` overrides the class's code for this one error.
    """

    code = "error"
    status: int = status.HTTP_400_BAD_REQUEST
    title = "The request could not be completed."
    field: str | None = None
    #: (code, title) at the top level when the error is about a field.
    field_error: ClassVar[tuple[str, str]] = ("validation_error", "Invalid input.")

    def __init__(
        self,
        detail: str | None = None,
        *,
        field: str | None = None,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers=None,
    ):
        if code:
            self.code = code
        self.detail = detail or self.title
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})
        self.field = field or type(self).field
        if self.field:
            self.extra.setdefault("errors", [{"field": self.field, "code": self.code, "detail": self.detail}])
        super().__init__(self.detail)

    def problem(self) -> dict[str, Any]:
        code, title = self.field_error if self.field else (self.code, self.title)
        return problem(status_code=self.status, code=code, title=title, detail=self.detail, **self.extra)


class NotFound(DomainError):
    code = "not_found"
    status = status.HTTP_404_NOT_FOUND
    title = "Not found."


class Conflict(DomainError):
    code = "conflict"
    status = status.HTTP_409_CONFLICT
    title = "The request conflicts with the current state."
    field_error = ("conflict", "The request conflicts with the current state.")


class Duplicate(Conflict):
    """A value that must be unique is taken; subclasses name the ``field`` and keep their own code."""

    code = "duplicate"
    title = "A value that must be unique is already taken."
    field_error = ("duplicate", "A value that must be unique is already taken.")


class ValidationFailed(DomainError):
    """A business rule about the input failed; ``field`` names the offending input when there is one."""

    code = "validation_error"
    status = status.HTTP_400_BAD_REQUEST
    title = "Invalid input."


class InvalidCharacters(ValidationFailed):
    """NUL or a lone surrogate: text PostgreSQL cannot store and no client means to send."""

    code = "invalid_characters"
    title = "Text may not contain NUL characters, lone surrogates or invalid UTF-8."


class NestingTooDeep(DomainError):
    code = "nesting_too_deep"
    title = "The JSON body is nested too deeply."


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    status = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    title = "The request body is too large."


class TooManyRequests(DomainError):
    code = "too_many_requests"
    status = status.HTTP_429_TOO_MANY_REQUESTS
    title = "Too many requests."

    def __init__(self, detail: str | None = None, *, retry_after: int, **kwargs):
        super().__init__(detail, **kwargs)
        self.retry_after = max(1, int(retry_after))
        self.headers["Retry-After"] = str(self.retry_after)
        self.extra["retry_after"] = self.retry_after


class DatabaseUnavailable(DomainError):
    """PostgreSQL is unreachable (config/outages.py): an outage, not a bug, so 503 with ``Retry-After``."""

    code = "database_unavailable"
    status = status.HTTP_503_SERVICE_UNAVAILABLE
    title = "The database is unreachable; try again shortly."

    def __init__(self):
        super().__init__(headers={"Retry-After": str(RETRY_AFTER_SECONDS)}, extra={"retry_after": RETRY_AFTER_SECONDS})


def problem(*, status_code: int, code: str, title: str, detail: str | None = None, **extra: Any) -> dict[str, Any]:
    body = {"type": TYPE_BASE + code, "title": title, "status": status_code, "code": code, "detail": detail or title}
    body.update(extra)
    return body


def problem_response(*, status_code: int, code: str, title: str, detail: str | None = None, **extra) -> JsonResponse:
    """A problem document for code outside DRF (middleware, Django's handler404/500)."""
    body = problem(status_code=status_code, code=code, title=title, detail=detail, **extra)
    return JsonResponse(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def error_response(error: DomainError) -> JsonResponse:
    """A :class:`DomainError` answered outside DRF (middleware)."""
    response = JsonResponse(error.problem(), status=error.status, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in error.headers.items():
        response[name] = value
    return response


class ProblemResponse(Response):
    """A problem document is JSON whatever the client accepts: content negotiation (the browsable API in
    development, a file format on exports) never renders an error as something else."""

    renderer = JSONRenderer()

    @property
    def accepted_renderer(self):
        return self.renderer

    @accepted_renderer.setter
    def accepted_renderer(self, value):
        pass

    @property
    def accepted_media_type(self):
        return PROBLEM_CONTENT_TYPE

    @accepted_media_type.setter
    def accepted_media_type(self, value):
        pass


def _flatten_validation(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "non_field_errors" if key in ("non_field_errors", "__all__") and not prefix else key
            errors += _flatten_validation(value, f"{prefix}.{name}" if prefix else str(name))
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):
                errors += _flatten_validation(value, f"{prefix}[{index}]")
            else:
                errors += _flatten_validation(value, prefix)
    else:
        code = getattr(detail, "code", None) or "invalid"
        errors.append({"field": prefix or "non_field_errors", "code": str(code), "detail": str(detail)})
    return errors


_DRF_CODES = {
    exceptions.NotAuthenticated: ("not_authenticated", "Authentication credentials were not provided."),
    exceptions.AuthenticationFailed: ("authentication_failed", "Authentication failed."),
    exceptions.PermissionDenied: ("permission_denied", "You do not have permission to perform this action."),
    exceptions.NotFound: ("not_found", "Not found."),
    exceptions.MethodNotAllowed: ("method_not_allowed", "Method not allowed."),
    exceptions.NotAcceptable: ("not_acceptable", "Not acceptable."),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", "Unsupported media type."),
    exceptions.Throttled: ("throttled", "Too many requests."),
    exceptions.ParseError: ("parse_error", "Malformed request body."),
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's ``EXCEPTION_HANDLER``: render every error as one problem document."""
    headers: dict[str, str] = {}
    if database_unreachable(exc):  # an outage, not a bug: 503 with Retry-After, like /readyz
        logger.warning("database unreachable: %s", exc)
        exc = DatabaseUnavailable()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        exc = exceptions.ParseError(str(exc))

    if isinstance(exc, DomainError):
        set_rollback()
        return ProblemResponse(exc.problem(), status=exc.status, headers=exc.headers, content_type=PROBLEM_CONTENT_TYPE)

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    if not isinstance(exc, exceptions.APIException):
        return None  # a real server error: Django's handler500 renders it (config/urls.py)

    set_rollback()
    extra: dict[str, Any] = {}
    if isinstance(exc, exceptions.ValidationError):
        code, title = "validation_error", "Invalid input."
        extra["errors"] = _flatten_validation(exc.detail)
        detail = extra["errors"][0]["detail"] if len(extra["errors"]) == 1 else "The request has invalid fields."
    else:
        if type(exc) in _DRF_CODES:
            code, title = _DRF_CODES[type(exc)]
        else:  # a subclass with its own default_code keeps it (e.g. invalid_api_key)
            code, title = exc.default_code, str(exc.default_detail)
        detail_code = getattr(exc.detail, "code", None)
        if isinstance(exc.detail, dict):
            detail_code = str(exc.detail.get("code", "")) or None
        # simplejwt signals invalid tokens with its own code; keep it stable for clients.
        if detail_code == "token_not_valid":
            code = "token_not_valid"
        detail = str(exc.detail) if not isinstance(exc.detail, dict | list) else str(exc.default_detail)
        if isinstance(exc.detail, dict) and "detail" in exc.detail:
            detail = str(exc.detail["detail"])
    auth_header, wait = getattr(exc, "auth_header", None), getattr(exc, "wait", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    if wait:
        headers["Retry-After"] = str(int(wait) + (0 if float(wait).is_integer() else 1))
        extra["retry_after"] = int(headers["Retry-After"])
    body = problem(status_code=exc.status_code, code=code, title=title, detail=detail, **extra)
    return ProblemResponse(body, status=exc.status_code, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


_STATUS_CODES = {
    status.HTTP_403_FORBIDDEN: "permission_denied",
    status.HTTP_413_REQUEST_ENTITY_TOO_LARGE: PayloadTooLarge.code,
    status.HTTP_500_INTERNAL_SERVER_ERROR: "server_error",
}


def problem_for_status(status_code: int, detail: str | None = None, **extra) -> JsonResponse:
    """The problem document for an error status produced outside this module (Django's resolver, middleware):
    ``not_found``, ``method_not_allowed``, ``server_error``… with no body of the original (a debug page) kept."""
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        phrase = "Error"
    code = _STATUS_CODES.get(status_code) or phrase.lower().replace("'", "").replace("-", "_").replace(" ", "_")
    title = "Internal server error." if status_code == 500 else phrase + "."
    return problem_response(status_code=status_code, code=code, title=title, detail=detail, **extra)


def handler404(request, exception=None):
    return problem_response(status_code=404, code="not_found", title="Not found.")


def handler500(request):
    if database_unreachable(sys.exc_info()[1]):  # raised outside DRF (middleware, plain Django views)
        exc = DatabaseUnavailable()
        response = problem_response(status_code=exc.status, code=exc.code, title=exc.title, **exc.extra)
        response["Retry-After"] = exc.headers["Retry-After"]
        return response
    return problem_response(status_code=500, code="server_error", title="Internal server error.")


def handler400(request, exception=None):
    if isinstance(exception, RequestDataTooBig):  # Django's own limit on a body it read (forms, request.body)
        return error_response(PayloadTooLarge())
    return problem_response(status_code=400, code="bad_request", title="Bad request.")


def handler403(request, exception=None):
    return problem_response(status_code=403, code="permission_denied", title="Permission denied.")
