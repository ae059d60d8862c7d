"""What analytics does when records change: it forgets the organization's cached figures.

Every change a figure depends on records an outbox event in its transaction (DESIGN §2), so one receiver of
``integrations.outbox.recorded``, connected in ``AnalyticsConfig.ready``, covers every service, bulk change and
import, without the record apps knowing analytics exists. Analytics' own events change no figure.
"""

from __future__ import annotations

from . import cache

OWN_EVENTS_PREFIX = "analytics."


def invalidate_on_events(sender, *, event_types: set[str], **kwargs) -> None:
    if all(event_type.startswith(OWN_EVENTS_PREFIX) for event_type in event_types):
        return
    cache.invalidate()
