"""Logging: one line per request, a request id carried into the tasks a request queues, JSON or plain lines.

``LOGGING`` in config/settings.py uses what is here:

- :class:`RequestLogMiddleware` (first in ``MIDDLEWARE``) writes one line per request on the ``config.request``
  logger: request id, organization, user id or API key prefix, route, method, status, duration and SQL query
  count (a streamed body, such as an export, is timed and counted until the response starts). It is the only
  line of a 4xx answer (``django.request`` keeps only server errors, with their traceback;
  the development server's access line and gunicorn's are off).
- The request id is the caller's ``X-Request-ID`` when it is a sane token, else a new one; it is answered in
  ``X-Request-ID``, added to every log record of the request (:class:`ContextFilter`) and to the headers of every
  task published meanwhile (``before_task_publish``), and a task's log records carry it (``task_prerun``).
- :func:`formatter`: JSON objects, one a line, when the output is not a terminal (a container, a file), readable
  lines on a terminal; ``LOG_FORMAT`` (``json``, ``plain``, ``auto``) decides instead.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.db import connection

from . import metrics

REQUEST_ID_HEADER = "X-Request-ID"
TASK_HEADER = "crm_request_id"  # the message header a task receives the request id in
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


# What every log record of the current request or task is about: request_id, organization.
context: ContextVar[dict[str, Any] | None] = ContextVar("log_context", default=None)
# The request being served (for error reports' tags: config/errors.py).
current_request: ContextVar[Any] = ContextVar("current_request", default=None)


def current_request_id() -> str | None:
    values = context.get()
    return values.get("request_id") if values else None


def new_request_id() -> str:
    return uuid.uuid4().hex


class OnlyServerErrors(logging.Filter):
    """``django.request`` keeps its records of 5xx answers (they carry the traceback); a 4xx is the request line's
    alone (:class:`RequestLogMiddleware`), so it is written once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "status_code", 500) >= 500


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``organization`` (or ``-``) to every record, from the request or task it is
    written in."""

    def filter(self, record: logging.LogRecord) -> bool:
        values = context.get() or {}
        if not hasattr(record, "request_id"):
            record.request_id = values.get("request_id") or "-"
        if not hasattr(record, "organization"):
            organization = values.get("organization")
            request = current_request.get()
            if organization is None and request is not None:
                organization = organization_of(request)
            record.organization = organization or "-"
        return True


# Record attributes that are not fields of the line (``request``: django.request's, the HttpRequest itself).
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "fields", "request"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, organization, the request line's
    ``fields`` and any other ``extra`` given to the call, and the traceback as one string."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _RESERVED and not name.startswith("_") and value != "-":
                line[name] = value
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """A readable line for a person at a terminal (no escape codes): time, level, logger, request id, message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            ContextFilter().filter(record)
        return super().format(record)


def formatter(style: str = "auto", stream: Any = None) -> logging.Formatter:
    """The formatter of ``LOG_FORMAT``: ``json``, ``plain``, or ``auto`` (plain on a terminal, else JSON)."""
    style = (style or "auto").strip().lower()
    if style == "auto":
        stream = stream if stream is not None else sys.stderr
        style = "plain" if getattr(stream, "isatty", lambda: False)() else "json"
    return PlainFormatter() if style == "plain" else JsonFormatter()


# --- requests -------------------------------------------------------------------------------------------------

request_logger = logging.getLogger("config.request")

_ROUTE_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_routes: dict[str, str] = {}


def route_of(request) -> str:
    """The URL pattern that served the request (``/api/v1/leads/{pk}/``), ``-`` when none did (a 404 of the
    resolver): a label of bounded cardinality, for log lines and metrics."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return "-"
    raw = match.route
    if raw not in _routes:
        route = _ROUTE_GROUP.sub(r"{\1}", raw).replace("^", "").replace("$", "").replace("\\", "")
        route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        _routes[raw] = "/" + route.lstrip("/")
    return _routes[raw]


def caller_of(request) -> dict[str, Any]:
    """Who called: the API key's visible prefix, else the signed-in user's id. Read without a query: a user
    Django would still have to load from the session is not looked up for the log."""
    auth = request.__dict__.get("auth")
    prefix = getattr(auth, "prefix", None) or getattr(request.__dict__.get("api_key"), "prefix", None)
    if prefix and getattr(auth, "organization_id", None) is not None:
        return {"api_key": prefix}
    user = request.__dict__.get("user")
    user = getattr(user, "_wrapped", user)  # Django's lazy user: read only if something already loaded it
    if getattr(user, "is_authenticated", False) is True:
        return {"user": user.pk}
    return {}


def organization_of(request) -> str | None:
    tenant = request.__dict__.get("tenant")
    return getattr(tenant, "slug", None) or None


class _QueryCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


class RequestLogMiddleware:
    """The outermost middleware: request id, one log line per request, and the request metrics
    (config/metrics.py)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        offered = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = offered if _SANE_ID.fullmatch(offered) else new_request_id()
        request.request_id = request_id
        values: dict[str, Any] = {"request_id": request_id}
        context_token = context.set(values)
        request_token = current_request.set(request)
        counter = _QueryCounter()
        try:
            with connection.execute_wrapper(counter):
                response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            duration = time.perf_counter() - started
            organization = organization_of(request)
            values["organization"] = organization
            route = route_of(request)
            fields = {
                "request_id": request_id,
                "organization": organization,
                **caller_of(request),
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(duration * 1000, 2),
                "queries": counter.count,
            }
            level = logging.ERROR if response.status_code >= 500 else logging.INFO
            request_logger.log(
                level,
                "%s %s %s %.1fms %dq",
                request.method,
                request.path,
                response.status_code,
                duration * 1000,
                counter.count,
                extra={"fields": fields},
            )
            metrics.observe_request(request.method, route, response.status_code, duration)
            return response
        finally:
            current_request.reset(request_token)
            context.reset(context_token)


# --- tasks: the request id travels in the message headers -----------------------------------------------------


@before_task_publish.connect(dispatch_uid="config.log.request_id_into_task")
def _request_id_into_task(headers=None, **kwargs) -> None:
    request_id = current_request_id()
    if request_id and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


def _header(task, name: str) -> Any:
    request = task.request
    if request.headers and name in request.headers:  # some brokers keep them apart (as tenant_schemas_celery)
        return request.headers.get(name)
    return request.get(name)


_task_tokens: dict[str, Any] = {}


@task_prerun.connect(dispatch_uid="config.log.task_context")
def _task_context(task_id=None, task=None, **kwargs) -> None:
    """The task's records carry the request id it was queued with (run in the calling process, a task keeps
    the caller's) and the schema it runs in."""
    if task is None or task_id is None:
        return
    request_id = _header(task, TASK_HEADER) or current_request_id() or f"task-{task_id}"
    schema = getattr(connection, "schema_name", None)
    tenant = getattr(connection, "tenant", None)
    organization = getattr(tenant, "slug", None) or (schema if schema and schema != "public" else None)
    _task_tokens[task_id] = context.set({"request_id": request_id, "organization": organization})


@task_postrun.connect(dispatch_uid="config.log.task_context_end")
def _task_context_end(task_id=None, **kwargs) -> None:
    token = _task_tokens.pop(task_id, None) if task_id else None
    if token is not None:
        try:
            context.reset(token)
        except ValueError:  # set in another context (a thread pool); nothing to restore there
            context.set(None)
