"""The Celery app of test workers: the project's app, with settings and broker options from the environment.

    celery -A tests.integrations.worker_app worker ...

``TEST_WORKER_SETTINGS`` (JSON) overrides Django settings (e.g. ``{"WEBHOOK_ALLOW_LOOPBACK": true}``);
``TEST_WORKER_TRANSPORT`` (JSON) overrides broker transport options (e.g. a visibility timeout of seconds,
so a killed worker's message is delivered again within the test); the others (socket timeouts) stay.
"""

import json
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings  # noqa: E402

from config.celery import app  # noqa: E402

for _name, _value in json.loads(os.environ.get("TEST_WORKER_SETTINGS") or "{}").items():
    setattr(settings, _name, _value)

_transport = json.loads(os.environ.get("TEST_WORKER_TRANSPORT") or "{}")
if _transport:
    app.conf.update(broker_transport_options={**app.conf.broker_transport_options, **_transport})

__all__ = ["app"]
