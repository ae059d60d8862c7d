"""A local OpenAI-compatible Chat Completions server that scripts the model, for the real ``openai`` client.

Each request pops the next scripted reply (or answers "OK." when the script is empty) and is kept in
``requests`` (the JSON body), so tests see exactly what the model was sent: its messages and the tools offered.

Replies:
- ``Reply(text=..., tool_calls=[(name, arguments), ...])``: streamed as chunks when the request streams, else one
  completion document; ``pieces`` splits the text into that many chunks, ``delay`` waits between chunks;
- ``Reply(status=429, headers={"Retry-After": "7"})``: an error document with that status;
- ``Reply(hang=seconds)``: says nothing that long (a timeout);
- ``Reply(text=..., cut=True)``: streams part of the text, then drops the connection;
- ``Reply(raw=[...])``: streams these ``data:`` payloads as they are (a broken or failing server), then ``[DONE]``.

It speaks HTTP/1.1 as model servers do: streams go out in chunked transfer encoding and connections are kept
alive between requests, so the client reuses them as it would in production.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0
    cut: bool = False
    pieces: int = 3
    delay: float = 0.0
    usage: tuple[int, int] = (10, 5)
    raw: list[str] | None = None


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class FakeModel:
    def __init__(self):
        self.script: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        # Seconds each answer took on this side, from its request line's arrival (reading the request is the
        # server's work too) to the answer's end: benchmarks subtract them.
        self.serving: list[float] = []
        self.connections = 0  # connections the clients opened
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, and chunked streams
            disable_nagle_algorithm = True  # each chunk leaves at once, as model servers send them

            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                model.connections += 1
                super().setup()

            def parse_request(self):  # the request line has just arrived (a kept-alive connection waits for it)
                self.arrived = time.perf_counter()
                return super().parse_request()

            def do_POST(self):
                started = self.arrived
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                model.requests.append(body)
                model.authorizations.append(self.headers.get("authorization", ""))
                reply = model.script.popleft() if model.script else Reply(text="OK.")
                try:
                    model._answer(self, body, reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                model.serving.append(time.perf_counter() - started)

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # many answers at once (benchmarks): none refused for want of a backlog

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def then(self, *replies: Reply) -> FakeModel:
        self.script.extend(replies)
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- answering ---
    def _answer(self, handler, body, reply: Reply) -> None:
        if reply.hang:
            time.sleep(reply.hang)
            handler.close_connection = True
            return
        if reply.status != 200:
            payload = json.dumps({"error": {"message": "scripted", "type": "scripted", "code": None}}).encode()
            handler.send_response(reply.status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(payload)))
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
            return
        if not body.get("stream"):
            self._document(handler, reply)
            return
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()

        def send(data: bytes) -> None:  # one chunk of the chunked body
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            handler.wfile.flush()

        payloads = reply.raw if reply.raw is not None else (json.dumps(chunk) for chunk in self._chunks(reply))
        for payload in payloads:
            send(f"data: {payload}\n\n".encode())
            if reply.delay:
                time.sleep(reply.delay)
        if reply.cut:
            handler.close_connection = True
            handler.connection.shutdown(2)  # the connection drops mid-answer
            return
        send(b"data: [DONE]\n\n")
        handler.wfile.write(b"0\r\n\r\n")  # the body's end

    @staticmethod
    def _chunk(delta: dict[str, Any] | None, finish: str | None = None, usage=None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "scripted",
        }
        chunk["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        if usage is not None:
            chunk["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
        return chunk

    def _chunks(self, reply: Reply):
        yield self._chunk({"role": "assistant", "content": ""})
        text = reply.text
        size = max(1, -(-len(text) // max(1, reply.pieces)))
        parts = [text[i : i + size] for i in range(0, len(text), size)]
        if reply.cut:
            parts = parts[: max(1, len(parts) // 2)]
        for part in parts:
            yield self._chunk({"content": part})
        if reply.cut:
            return
        for index, (name, arguments) in enumerate(reply.tool_calls):
            raw = _arguments(arguments)
            half = len(raw) // 2
            yield self._chunk(
                {"tool_calls": [{"index": index, "id": f"call_{index}", "type": "function",
                                 "function": {"name": name, "arguments": raw[:half]}}]}
            )  # fmt: skip
            yield self._chunk({"tool_calls": [{"index": index, "function": {"arguments": raw[half:]}}]})
        yield self._chunk({}, finish="tool_calls" if reply.tool_calls else "stop")
        yield self._chunk(None, usage=reply.usage)

    @staticmethod
    def _document(handler, reply: Reply) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": _arguments(a)}}
                for i, (n, a) in enumerate(reply.tool_calls)
            ]
        payload = json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": "scripted",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": reply.usage[0], "completion_tokens": reply.usage[1], "total_tokens": 0},
            }
        ).encode()
        handler.send_response(200)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
