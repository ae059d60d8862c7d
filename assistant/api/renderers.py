from __future__ import annotations

from rest_framework.renderers import JSONRenderer


class EventStreamRenderer(JSONRenderer):
    """Lets a client ask for ``text/event-stream``: the answer then streams (the view builds the events); anything
    else the view returns (its errors included) is JSON."""

    media_type = "text/event-stream"
    format = "sse"
