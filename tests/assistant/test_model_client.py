"""The model client: answers that begin at once in a cold process all stream to their end; consecutive calls share
one connection."""

from __future__ import annotations

import threading

from assistant import llm

from .fake_model import Reply


def test_answers_beginning_at_once_on_a_cold_client_all_complete(model):
    answers = 8
    model.then(*[Reply(text="word " * 20, pieces=20, delay=0.01) for _ in range(answers)])
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

    llm._cached_client.cache_clear()  # every thread finds no client: each may build its own
    access = llm.model_access()
    threads = [threading.Thread(target=ask) for _ in range(answers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == ["word " * 20] * answers


def test_consecutive_answers_reuse_one_connection(model):
    """A stream closed before its body's end takes its connection with it: every call connected again (a TLS
    handshake each, against a hosted model). The client reads on past ``[DONE]``, so the connection is kept."""
    model.then(Reply(text="one"), Reply(tool_calls=[("search_records", {"query": "acme"})]), Reply(text="three"))
    llm._cached_client.cache_clear()
    access = llm.model_access()
    turns = [
        list(llm.stream_turn(access, messages=[{"role": "user", "content": "hi"}], tools=[], max_chars=100))[-1]
        for _ in range(3)
    ]
    assert [turn.text for turn in turns] == ["one", "", "three"]
    assert turns[1].tool_calls[0].name == "search_records"
    assert model.connections == 1
