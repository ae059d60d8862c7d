"""API rate limits by plan: per API key, or per user within an organization, per minute and per day.

Counted in Redis with fixed windows: one script call per request counts every window and sets the expiry of a
new counter, in one round trip (the client and the script are made once per process). Every organization-scoped
response carries ``RateLimit-*`` and ``X-RateLimit-*`` headers; over the limit the answer is 429 with
``Retry-After``. When Redis is unreachable the API keeps serving (fail open) and says so in the log; after a
failure the counters are skipped for a few seconds (the server's breaker, :mod:`config.breaker`) instead of
paying a timeout on every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import time as clock

from rest_framework.throttling import BaseThrottle

from config.breaker import Unavailable
from config.cache import control_cache

from .features import Limit

WINDOWS = ((Limit.API_CALLS_PER_MINUTE, 60), (Limit.API_CALLS_PER_DAY, 86400))

# INCR each window's counter, and give it its expiry if it has none (EXPIRE NX, as a fresh counter needs).
_COUNT = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[i], 'NX')
end
return counts
"""
_counter: tuple | None = None  # (the control cache it was made for, its Redis client, the registered script)


def _counter_script(cache):
    """The control cache's Redis client and the counting script, made once per cache (settings may swap it)."""
    global _counter
    if _counter is None or _counter[0] is not cache:
        client = cache.redis_client()
        _counter = (cache, client, client.register_script(_COUNT))
    return _counter[1], _counter[2]


@dataclass(frozen=True)
class Window:
    limit: int
    count: int
    reset: int  # seconds until the window starts over
    seconds: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit


def principal_of(access) -> str:
    if access.principal == "api_key":
        return f"key:{access.key_id}"
    return f"user:{access.organization_id}:{access.user_id}"


def hit(*, principal: str, limits: dict[str, int], now: float | None = None) -> list[Window] | None:
    """Count one request; the windows that have a limit, or None when the counters are unreachable."""
    now = clock() if now is None else now
    spec = [(limits[name], seconds) for name, seconds in WINDOWS if limits.get(name) is not None]
    if not spec:
        return []
    starts = [int(now // seconds) * seconds for _limit, seconds in spec]
    cache = control_cache()
    keys = [
        cache.make_and_validate_key(f"ratelimit:{principal}:{seconds}:{start}")
        for (_limit, seconds), start in zip(spec, starts, strict=True)
    ]
    try:
        with cache.breaker.guard("rate limit counters", "serving without limits"):
            client, script = _counter_script(cache)
            counts = script(keys=keys, args=[seconds + 5 for _limit, seconds in spec], client=client)
    except Unavailable:
        return None
    return [
        Window(limit=limit, count=count, reset=max(1, int(start + seconds - now)), seconds=seconds)
        for (limit, seconds), start, count in zip(spec, starts, counts, strict=True)
    ]


def headers_for(windows: list[Window]) -> dict[str, str]:
    if not windows:
        return {}
    tightest = min(windows, key=lambda w: (w.remaining, w.reset))
    exceeded = [w for w in windows if w.exceeded]
    if exceeded:
        tightest = max(exceeded, key=lambda w: w.reset)
    policy = ", ".join(f"{w.limit};w={w.seconds}" for w in windows)
    return {
        "RateLimit-Limit": str(tightest.limit),
        "RateLimit-Remaining": str(tightest.remaining),
        "RateLimit-Reset": str(tightest.reset),
        "RateLimit-Policy": policy,
        "X-RateLimit-Limit": str(tightest.limit),
        "X-RateLimit-Remaining": str(tightest.remaining),
        "X-RateLimit-Reset": str(tightest.reset),
    }


class PlanRateThrottle(BaseThrottle):
    """DRF throttle for organization-scoped endpoints; runs after the policy has set ``request.access``."""

    def allow_request(self, request, view) -> bool:
        access = getattr(request, "access", None)
        self._wait = None
        if access is None:
            return True
        windows = hit(principal=principal_of(access), limits=access.entitlements.limits)
        if not windows:
            return True
        request.rate_limit_headers = headers_for(windows)
        exceeded = [w for w in windows if w.exceeded]
        self._wait = max((w.reset for w in exceeded), default=None)
        return not exceeded

    def wait(self):
        return self._wait
