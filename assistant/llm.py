"""The language model: the official ``openai`` client against any Chat Completions server (OpenAI's, or a compatible
one at ``ASSISTANT_BASE_URL``), with a timeout and no hidden retries (a retry is the caller's to decide, told by
``Retry-After``). Upstream failures become problems with stable codes (:mod:`assistant.errors`)."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from django.conf import settings

from . import errors

#: When the model server gives no Retry-After (a 5xx, a refused connection), callers are told to wait this long.
DEFAULT_RETRY_AFTER_SECONDS = 10


@dataclass(frozen=True)
class ModelAccess:
    base_url: str | None
    model: str
    api_key: str
    own_key: bool = False


def model_access(*, own_key: str | None = None, own_model: str = "") -> ModelAccess:
    """Who answers: the organization's own key when it has one, else the deployment's. 503
    ``assistant_not_configured`` when neither names a model and a key."""
    model = own_model or settings.ASSISTANT_MODEL
    key = own_key or settings.ASSISTANT_API_KEY
    if not model or not key:
        raise errors.AssistantNotConfigured()
    return ModelAccess(base_url=settings.ASSISTANT_BASE_URL or None, model=model, api_key=key, own_key=bool(own_key))


@functools.lru_cache(maxsize=64)
def _cached_client(api_key: str, base_url: str | None, timeout: float) -> openai.OpenAI:
    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)


_clients_lock = threading.Lock()


def _client(access: ModelAccess) -> openai.OpenAI:
    """One client per key and server, kept: building one loads the TLS context (tens of milliseconds), and a kept
    client reuses its connections. The client is thread-safe; threads that find none build one, one at a time."""
    with _clients_lock:
        return _cached_client(access.api_key, access.base_url, settings.ASSISTANT_TIMEOUT_SECONDS)


def _retry_after(response) -> int | None:
    if response is None:
        return None
    raw = response.headers.get("retry-after")
    try:
        return max(1, int(float(raw))) if raw else None
    except ValueError:
        return None


def _cut_off() -> errors.DomainError:
    return errors.UpstreamUnavailable(
        "The language model's answer was cut off.", retry_after=DEFAULT_RETRY_AFTER_SECONDS
    )


def translate(exc: Exception) -> errors.DomainError:
    """The problem an upstream failure is answered with: the client's errors before the answer begins, the
    transport's while it streams (``httpx2``), and anything else (a stream that cannot be read) as unreadable."""
    if isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException)):
        return errors.UpstreamTimeout(retry_after=DEFAULT_RETRY_AFTER_SECONDS)
    if isinstance(exc, openai.APIConnectionError):
        return errors.UpstreamUnavailable(
            "The language model server could not be reached.", retry_after=DEFAULT_RETRY_AFTER_SECONDS
        )
    if isinstance(exc, httpx2.TransportError):  # the answer had begun
        return _cut_off()
    if isinstance(exc, openai.RateLimitError):
        wait = _retry_after(exc.response) or DEFAULT_RETRY_AFTER_SECONDS
        return errors.UpstreamRateLimited(retry_after=wait)
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code in (401, 403):
            return errors.UpstreamError("The language model server refused the co-pilot's key.")
        if exc.status_code >= 500:
            wait = _retry_after(exc.response) or DEFAULT_RETRY_AFTER_SECONDS
            return errors.UpstreamUnavailable(
                f"The language model server answered {exc.status_code}.", retry_after=wait
            )
        return errors.UpstreamError(f"The language model server answered {exc.status_code}.")
    return errors.UpstreamError("The language model's answer could not be read.")


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass
class Turn:
    """One model answer, assembled from its streamed chunks."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False


@dataclass
class Delta:
    text: str


def _data(response: httpx2.Response) -> Iterator[dict[str, Any]]:
    """The JSON documents a Chat Completions stream sends as Server-Sent Events (``data:`` lines, an event ending at
    a blank line), up to ``[DONE]``. Read off the raw response: typed chunk objects cost more than everything
    else the client does (bench/copilot.py)."""
    data: list[str] = []
    lines = response.iter_lines()
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            if name == "data":
                data.append(value[1:] if value.startswith(" ") else value)
            continue
        if not data:
            continue
        payload, data = "\n".join(data), []
        if payload.startswith("[DONE]"):
            # Read on to the body's end, as the openai client's own streams do: a response closed before its end
            # closes its connection too, and the next call would connect again. Not forever, though.
            for _rest in itertools.islice(lines, 100):
                pass
            return
        document = json.loads(payload)
        if not isinstance(document, dict):
            raise ValueError("a stream event that is not an object")
        if document.get("error"):  # an error reported mid-stream
            raise errors.UpstreamError("The language model server reported an error while answering.")
        yield document


def stream_turn(
    access: ModelAccess, *, messages: list[dict[str, Any]], tools: list[dict[str, Any]], max_chars: int
) -> Iterator[Delta | Turn]:
    """Ask the model once, streaming: yields each text :class:`Delta` as it comes, then the whole :class:`Turn`.
    Text past ``max_chars`` is cut (a server that ignores ``max_tokens`` cannot flood us). Upstream failures are
    raised as problems (:func:`translate`)."""
    # The request is the client's own ``post`` (its documented way to send a body as it is): ``create()`` first
    # walks its typed parameters recursively to transform them, which cost 55 ms per call with a dozen tool schemas
    # and a record's timeline (bench/copilot.py); ours are plain JSON already. The client still sends it: its
    # base URL, key, headers, timeout and errors.
    body: dict[str, Any] = {
        "model": access.model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": settings.ASSISTANT_MAX_OUTPUT_TOKENS,
    }
    if tools:
        body["tools"] = tools
    turn = Turn()
    calls: dict[int, ToolCall] = {}
    finished = False
    client = _client(access)  # held while the answer streams: a client collected closes its connections
    try:
        response = client.post("/chat/completions", cast_to=httpx2.Response, body=body, stream=True)
    except openai.OpenAIError as exc:
        raise translate(exc) from exc
    with contextlib.closing(response):
        try:
            for chunk in _data(response):
                usage = chunk.get("usage")
                if usage:
                    turn.prompt_tokens = usage.get("prompt_tokens") or 0
                    turn.completion_tokens = usage.get("completion_tokens") or 0
                for choice in chunk.get("choices") or ():
                    finished = finished or bool(choice.get("finish_reason"))
                    delta = choice.get("delta")
                    if not delta:
                        continue
                    content = delta.get("content")
                    if content and not turn.truncated:
                        piece = content[: max(0, max_chars - len(turn.text))]
                        turn.truncated = len(piece) < len(content)
                        if piece:
                            turn.text += piece
                            yield Delta(piece)
                    for part in delta.get("tool_calls") or ():
                        call = calls.setdefault(part["index"], ToolCall(id="", name="", arguments=""))
                        if part.get("id"):
                            call.id = part["id"]
                        function = part.get("function")
                        if function:
                            call.name += function.get("name") or ""
                            call.arguments += function.get("arguments") or ""
        # the transport failing mid-answer; a document that is not JSON, or not a chunk's shape
        except (httpx2.TransportError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise translate(exc) from exc
    if not finished:  # the stream ended without saying why: the connection dropped mid-answer
        raise _cut_off()
    turn.tool_calls = [calls[index] for index in sorted(calls)]
    for number, call in enumerate(turn.tool_calls):
        call.id = call.id or f"call_{number}"
    yield turn
