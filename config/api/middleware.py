"""The edge of ``/api/``: what is refused before any view runs, and the one shape of every error answered.

- A query string with NUL, a lone surrogate or invalid UTF-8 in any name or value: 400 ``validation_error``
  (per-field code ``invalid_characters``). JSON and form bodies get the same rule in :mod:`config.api.parsers`.
- A body announced larger than :func:`config.api.parsers.max_body_bytes`: 413 ``payload_too_large`` before it
  is read (file uploads are bounded by their endpoint; bodies without a length are bounded by the parser).
- Any error answer that is not already a problem document (Django's resolver 404, its debug pages, a 405 or a
  500 from outside DRF) is replaced by the problem document for its status, whatever ``DEBUG`` says: no HTML,
  no traceback. A URL missing its trailing slash is a 404 naming the right URL, never a redirect.
"""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from django.middleware import common
from django.urls import get_urlconf, is_valid_path

from .errors import PROBLEM_CONTENT_TYPE, InvalidCharacters, PayloadTooLarge, error_response, problem_for_status
from .parsers import max_body_bytes

API_PREFIX = "/api/"
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def is_api(request) -> bool:
    return request.path_info.startswith(API_PREFIX)


def _bad_query_parameter(query_string: str) -> str | None:
    """The name of the first parameter whose name or value is not storable text, if any."""
    raw = query_string.encode("iso-8859-1", "replace")  # WSGI hands the bytes over as latin-1 text
    if "%" not in query_string and raw.isascii() and b"\x00" not in raw:
        return None
    for pair in raw.split(b"&"):
        name, _, value = pair.partition(b"=")
        for part in (name, value):
            decoded = unquote_to_bytes(part.replace(b"+", b" "))
            try:
                text = decoded.decode("utf-8")
            except UnicodeDecodeError:
                return unquote_to_bytes(name).decode("utf-8", "replace")
            if "\x00" in text:
                return unquote_to_bytes(name).decode("utf-8", "replace")
    return None


class ApiEdgeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_api(request):
            return self.get_response(request)
        refusal = self.refusal(request)
        response = refusal or self.get_response(request)
        return self.as_problem(request, response)

    def refusal(self, request):
        bad = _bad_query_parameter(request.META.get("QUERY_STRING", ""))
        if bad is not None:
            return error_response(InvalidCharacters(field=bad.replace("\x00", "\\x00") or "non_field_errors"))
        length = request.META.get("CONTENT_LENGTH") or ""
        content_type = request.META.get("CONTENT_TYPE") or ""
        limit = max_body_bytes()
        if length.isdigit() and int(length) > limit and not content_type.startswith("multipart/form-data"):
            error = PayloadTooLarge(f"Request bodies are limited to {limit:,} bytes.", extra={"max_bytes": limit})
            return error_response(error)
        return None

    def as_problem(self, request, response):
        if response.status_code < 400:
            return response
        is_problem = response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE)
        if response.status_code == 404 and _missing_slash(request) and _unmatched(response, is_problem):
            return problem_for_status(404, f"API URLs end with a slash: {request.path}/")
        if is_problem:
            return response
        problem = problem_for_status(response.status_code)
        for name in KEPT_HEADERS:
            if response.has_header(name):
                problem[name] = response[name]
        return problem


def _missing_slash(request) -> bool:
    path = request.path_info
    return not path.endswith("/") and bool(is_valid_path(path + "/", get_urlconf()))


def _unmatched(response, is_problem: bool) -> bool:
    """The resolver's 404 (a debug page, or ``handler404``'s ``not_found``), not one a middleware answered."""
    return not is_problem or json.loads(response.content).get("code") == "not_found"


class CommonMiddleware(common.CommonMiddleware):
    """Django's, except that an API URL missing its slash is not redirected: a redirected POST loses its body
    (and with ``DEBUG`` Django raises instead). :class:`ApiEdgeMiddleware` answers the 404 with the right URL."""

    def should_redirect_with_slash(self, request):
        return not is_api(request) and super().should_redirect_with_slash(request)
