"""Request bodies, refused at the edge when no service could use them: larger than the documented limit (413
``payload_too_large``), nested deeper than :data:`MAX_DEPTH` (400 ``nesting_too_deep``), or holding text
PostgreSQL cannot store (NUL, lone surrogates: 400 ``validation_error`` naming the field, per-field code
``invalid_characters``). The query string gets the same character rule in :mod:`config.api.middleware`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.settings import api_settings

from . import errors  # a module: config.api.errors imports DRF's views, which import this module

#: Deepest nesting of arrays and objects a JSON body may have; the API's own bodies need 3.
MAX_DEPTH = 32


def max_body_bytes() -> int:
    """The largest request body the API reads, file uploads aside (they have their own limit)."""
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> bool:
    """NUL or a lone surrogate (never valid in UTF-8, refused by PostgreSQL)."""
    return _UNSTORABLE.search(text) is not None


def _path(prefix: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else str(key)


def check_data(data: Any) -> None:
    """Walk a parsed body without recursion: depth, then every key and string."""
    pending = [(data, "", 1)]
    while pending:
        value, path, depth = pending.pop()
        if isinstance(value, str):
            if unstorable(value):
                raise errors.InvalidCharacters(field=path or "non_field_errors")
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise errors.NestingTooDeep(f"Arrays and objects may be nested at most {MAX_DEPTH} levels deep.")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and unstorable(key):
                    raise errors.InvalidCharacters(field=path or "non_field_errors")
                pending.append((item, _path(path, key), depth + 1))


def _reject_constant(value: str):
    raise ValueError(f"{value} is not valid JSON.")


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, bounded: at most :func:`max_body_bytes` read, :data:`MAX_DEPTH` levels, storable text."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        limit = max_body_bytes()
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise errors.PayloadTooLarge(f"Request bodies are limited to {limit:,} bytes.", extra={"max_bytes": limit})
        try:
            text = raw.decode(encoding)
            data = json.loads(text, parse_constant=_reject_constant if api_settings.STRICT_JSON else None)
        except RecursionError:
            raise errors.NestingTooDeep(f"Arrays and objects may be nested at most {MAX_DEPTH} levels deep.") from None
        except (ValueError, LookupError) as exc:  # malformed JSON, invalid UTF-8, an unknown charset
            raise ParseError(f"JSON parse error - {exc}") from None
        check_data(data)
        return data


class _CheckedForm(parsers.BaseParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        data: Any = getattr(parsed, "data", parsed)
        for key, values in data.lists():
            if unstorable(key) or any(unstorable(value) for value in values):
                raise errors.InvalidCharacters(field=key if not unstorable(key) else "non_field_errors")
        for key, upload in getattr(parsed, "files", {}).items():
            if unstorable(upload.name or ""):
                raise errors.InvalidCharacters(field=key)
        return parsed


class FormParser(_CheckedForm, parsers.FormParser):
    pass


class MultiPartParser(_CheckedForm, parsers.MultiPartParser):
    pass
