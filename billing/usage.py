"""How much of each limit an organization uses. Apps register a counter for the limits they own."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .features import Limit

if TYPE_CHECKING:
    from tenants.models import Organization

Counter = Callable[["Organization"], int]
_COUNTERS: dict[str, Counter] = {}


def register_counter(limit: Limit, counter: Counter) -> None:
    _COUNTERS[str(limit)] = counter


def counter_for(limit: str) -> Counter | None:
    return _COUNTERS.get(str(limit))


def counted_limits() -> list[str]:
    return list(_COUNTERS)
