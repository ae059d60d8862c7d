"""Local stand-ins of the outside services campaigns talk to, on loopback:

- :class:`SmtpServer`: a real SMTP server (aiosmtpd) that keeps every message it accepted (answered 250). It can
  hold the answer to DATA (``hold``): a client killed while waiting never got a 250, and the message is not
  counted, as a real server would not have taken responsibility for it.
- :class:`TwilioServer`: an HTTP server speaking the part of Twilio's Messages API the client uses
  (``POST /2010-04-01/Accounts/{sid}/Messages.json``), with basic auth; it can fail with a status for a while.
"""

from __future__ import annotations

import asyncio
import base64
import email
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Accepted:
    sender: str
    recipients: list[str]
    content: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.content, policy=policy.default)

    @property
    def message_id(self) -> str:
        return self.message["Message-ID"]


class _Handler:
    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.server.refuse:
            return self.server.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        owner = self.server
        with owner.lock:
            hold = owner.hold_next > 0 or (owner.hold_at is not None and len(owner.accepted) == owner.hold_at)
            if hold:
                owner.hold_next = max(0, owner.hold_next - 1)
                owner.hold_at = None
        if hold:
            owner.holding.set()
            while not owner.release.is_set():
                await asyncio.sleep(0.05)  # cancelled when the client's connection goes
            if server.transport is None or server.transport.is_closing():
                return "451 Connection gone"
        with owner.lock:
            owner.accepted.append(Accepted(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"


class SmtpServer:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.accepted: list[Accepted] = []
        self.lock = threading.Lock()
        self.refuse: dict[str, str] = {}
        self.hold_next = 0  # hold the answer to the next DATA commands
        self.hold_at: int | None = None  # hold the answer to the DATA that comes after this many accepted
        self.holding = threading.Event()
        self.release = threading.Event()
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if getattr(self.controller, "_thread", None) is not None:
            self.controller.stop()

    def recipients(self) -> list[str]:
        with self.lock:
            return [rcpt for message in self.accepted for rcpt in message.recipients]

    def wait_for(self, count: int, timeout: float = 30) -> list[Accepted]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.accepted) >= count:
                    return list(self.accepted)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.accepted)} messages accepted, waited for {count}")


@dataclass
class TwilioServer:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "test-auth-token-0123456789abcdef"
    messages: list[dict] = field(default_factory=list)
    fail_with: int | None = None  # answer every create with this status while set
    port: int = 0

    def start(self) -> TwilioServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                expected = "Basic " + base64.b64encode(f"{owner.account_sid}:{owner.auth_token}".encode()).decode()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if self.headers.get("Authorization") != expected:
                    return self._json(401, {"code": 20003, "message": "Authenticate", "status": 401})
                if self.path != f"/2010-04-01/Accounts/{owner.account_sid}/Messages.json":
                    return self._json(404, {"code": 20404, "message": "Not found", "status": 404})
                if owner.fail_with is not None:
                    return self._json(owner.fail_with, {"code": 20500, "message": "Down", "status": owner.fail_with})
                form = {name: values[-1] for name, values in parse_qs(body).items()}
                if form.get("To", "").endswith("+15550000000"):
                    return self._json(400, {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400})
                sid = "SM" + uuid.uuid4().hex
                owner.messages.append({**form, "sid": sid})
                self._json(
                    201,
                    {
                        "sid": sid,
                        "status": "queued",
                        "to": form.get("To"),
                        "from": form.get("From"),
                        "body": form.get("Body"),
                        "account_sid": owner.account_sid,
                    },
                )
                return None

            def _json(self, status: int, payload: dict):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
