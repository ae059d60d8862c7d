"""The broker transport (config/broker.py): a worker that loses Redis while it holds an unacknowledged message
reconnects instead of exiting. tests/faults/test_redis.py stops a real Redis under a working worker."""

from __future__ import annotations

import uuid

import pytest
import redis
from kombu import Connection, Queue

from config import broker
from config.celery import app

from .conftest import TEST_BROKER_DB, _redis_url


def test_the_app_uses_the_transport():
    with app.connection_for_write() as conn:
        assert conn.transport.Channel is broker.Channel


@pytest.mark.parametrize(("transport", "fails_with"), [(None, AttributeError), ("config.broker:Transport", None)])
def test_closing_after_the_transport_was_collected(transport, fails_with):
    """The state Celery reaches when the connection drops mid-task: it collected the transport, the channel is
    still open (its first close stopped half-way) and holds an unacknowledged message. kombu's own transport
    then raises AttributeError, which ends the worker; ours raises nothing Celery does not ignore."""
    prefix = f"test-broker-{uuid.uuid4().hex[:8]}:"  # every key of this test, the unacknowledged set included
    queue_name = "queue"
    conn = Connection(_redis_url(TEST_BROKER_DB), transport=transport, transport_options={"global_keyprefix": prefix})
    try:
        channel = conn.default_channel
        queue = Queue(queue_name, channel=channel)
        queue.declare()
        conn.Producer(channel=channel).publish({"n": 1}, routing_key=queue_name)
        received = []
        conn.Consumer([queue], callbacks=[lambda body, message: received.append(message)], channel=channel).consume()
        conn.drain_events(timeout=5)
        assert len(received) == 1
        conn._do_close_transport()
        if fails_with is None:
            conn.close()
        else:
            with pytest.raises(fails_with):
                conn.close()
    finally:
        client = redis.Redis.from_url(_redis_url(TEST_BROKER_DB), socket_timeout=5)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
