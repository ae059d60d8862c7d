"""A small request load against a real API process, and the figures the fault suite reports.

Each client thread loops over: list leads, create a lead, create a lead with an ``Idempotency-Key``, pausing
between requests. Every answer is kept with the phase it happened in (the test names the phases as it
injects faults), so figures come per phase: requests, status counts, p50/p99 latency.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPORT = Path(__file__).resolve().parents[2] / "var" / "faults-report.txt"


@dataclass
class Answer:
    phase: str
    kind: str  # read, write, keyed (a write with an Idempotency-Key)
    status: int | None  # None: no HTTP answer (connection refused, reset or timed out)
    code: str  # the problem's code, for errors
    retry_after: str
    seconds: float
    at: float  # time.monotonic() when the request was sent
    name: str = ""  # of the lead a write created


@dataclass
class Load:
    port: int
    headers: dict[str, str]
    clients: int = 3
    pause: float = 0.1
    timeout: float = 30.0
    phase: str = "before"
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for index in range(self.clients):
            thread = threading.Thread(target=self._client, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    def _client(self, index: int) -> None:
        conn = None
        kinds = ("read", "write", "keyed")
        step = 0
        while not self._stop.is_set():
            kind = kinds[step % len(kinds)]
            step += 1
            name = f"load-{index}-{step}-{uuid.uuid4().hex[:6]}"
            if kind == "read":
                method, path, body, extra = "GET", "/api/v1/leads/?page_size=5", None, {}
            else:
                method, path, body = "POST", "/api/v1/leads/", json.dumps({"name": name})
                extra = {"Content-Type": "application/json"}
                if kind == "keyed":
                    extra["Idempotency-Key"] = f"key-{name}"
            phase, started = self.phase, time.monotonic()
            status, code, retry_after = None, "", ""
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                conn.request(method, path, body=body, headers={**self.headers, **extra})
                response = conn.getresponse()
                payload = response.read()
                status, retry_after = response.status, response.getheader("Retry-After") or ""
                if status >= 400:
                    code = json.loads(payload or b"{}").get("code", "")
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException, ValueError):
                if conn is not None:
                    conn.close()
                conn = None
            seconds = time.monotonic() - started
            answer = Answer(phase, kind, status, code, retry_after, seconds, started, name if body else "")
            self.answers.append(answer)
            self._stop.wait(self.pause)
        if conn is not None:
            conn.close()

    # --- figures ---
    def in_phase(self, *phases: str) -> list[Answer]:
        return [answer for answer in self.answers if answer.phase in phases]

    def first_success_after(self, moment: float, kind: str | None = None) -> float | None:
        """Seconds from ``moment`` to the first request sent after it that succeeded (of ``kind``, if given)."""
        times = [
            answer.at - moment
            for answer in self.answers
            if answer.at >= moment and answer.status is not None and answer.status < 300
            if kind is None or answer.kind == kind
        ]
        return min(times, default=None)

    def acknowledged_writes(self) -> list[str]:
        return [answer.name for answer in self.answers if answer.kind != "read" and answer.status == 201]

    def refused_writes(self) -> list[str]:
        return [answer.name for answer in self.answers if answer.kind != "read" and answer.status != 201]

    def unexpected(self, allowed_503: set[str]) -> list[Answer]:
        """Answers that are neither a success nor a documented 503 with ``Retry-After``."""
        return [
            answer
            for answer in self.answers
            if answer.status is None
            or answer.status >= 500
            and not (answer.status == 503 and answer.code in allowed_503 and answer.retry_after)
        ]


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def phase_line(answers: list[Answer], phase: str) -> str:
    statuses = Counter(answer.status if answer.status is not None else "no answer" for answer in answers)
    codes = Counter(answer.code for answer in answers if answer.code)
    seconds = [answer.seconds for answer in answers]
    shown = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items(), key=str))
    coded = f" ({', '.join(f'{code}: {count}' for code, count in sorted(codes.items()))})" if codes else ""
    return (
        f"  {phase:<11} {len(answers):>4} requests  p50 {percentile(seconds, 0.5) * 1000:4.0f} ms"
        f"  p99 {percentile(seconds, 0.99) * 1000:5.0f} ms  max {max(seconds, default=0) * 1000:5.0f} ms"
        f"  {{{shown}}}{coded}"
    )


def report(title: str, lines: list[str]) -> str:
    """Append one fault's figures to the report (printed at the end of the run) and return them."""
    text = "\n".join([title, *lines]) + "\n"
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with REPORT.open("a") as out:
        out.write(text)
    print(text)  # noqa: T201 - shown with -s
    return text
