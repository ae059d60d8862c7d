"""The Celery broker transport: kombu's Redis transport, with one fix for a worker that loses Redis mid-task.

When the connection drops while a worker holds an unacknowledged message, Celery closes the broken connection
twice (``collect()``, then ``close()``). If the first close stopped half-way (the pending BRPOP read raised the
connection error), the second one, after the transport was collected, tries to requeue the unacknowledged
message through a connection pool it can no longer build: an ``AttributeError`` that Celery does not expect
there, so the worker exits ("Unrecoverable error") instead of reconnecting. Measured by
tests/faults/test_redis.py, about one Redis stop in six under load.

Here that attempt fails as what it is, a connection error, which Celery ignores while it reconnects; the
message stays in Redis's unacknowledged set and comes back after the visibility timeout, like the message of a
killed worker (webhook deliveries do not wait for it: integrations/relay.py).
"""

from __future__ import annotations

import redis.exceptions
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        if self.connection.client is None:  # the transport was collected: there is no broker to talk to
            raise redis.exceptions.ConnectionError("the broker connection is closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
