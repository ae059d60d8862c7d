"""The model client under concurrency: answers that begin at once in a cold process all stream to their end."""

from __future__ import annotations

import threading

from django.test import override_settings

from assistant import llm

from .fake_model import FakeModel, Reply


def test_answers_beginning_at_once_on_a_cold_client_all_complete():
    fake = FakeModel()
    answers = 8
    fake.then(*[Reply(text="word " * 20, pieces=20, delay=0.01) for _ in range(answers)])
    start = threading.Barrier(answers)
    outcomes: list[str] = []

    def ask():
        start.wait()
        try:
            turn = list(
                llm.stream_turn(access, messages=[{"role": "user", "content": "hi"}], tools=[], max_chars=10**4)
            )
            outcomes.append(turn[-1].text)
        except Exception as error:  # reported by the assertion below
            outcomes.append(repr(error.__cause__ or error))

    try:
        with override_settings(ASSISTANT_BASE_URL=fake.base_url, ASSISTANT_MODEL="scripted", ASSISTANT_API_KEY="cold"):
            llm._cached_client.cache_clear()  # every thread finds no client: each may build its own
            access = llm.model_access()
            threads = [threading.Thread(target=ask) for _ in range(answers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        fake.close()
    assert outcomes == ["word " * 20] * answers
