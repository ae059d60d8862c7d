"""A Redis cache that degrades to "no cache" instead of failing the request when Redis is unreachable.

Everything cached here can be recomputed from PostgreSQL, so an outage costs speed, not availability. After a
failure the server is skipped for a few seconds (per process, :mod:`config.breaker`) rather than paying a timeout
on every call. Callers that must know whether Redis answered (idempotency keys) use :attr:`strict`, whose
operations raise :class:`~config.breaker.Unavailable` instead of falling back.

Django's Redis client makes a new ``redis.Redis`` for every operation, which costs redis-py 8 about 0.2 ms of CPU
(it fills a table of ~170 response callbacks each time): several times per API request. Here each connection pool
gets one client, made once; a ``redis.Redis`` is safe to share between threads, its pool hands out connections.
"""

from __future__ import annotations

from typing import Any, cast

from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

from .breaker import Unavailable, breaker_for


class ReusedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]  # Django's, not in the stubs
        client = self._clients.get(pool)
        if client is None:
            client = self._clients[pool] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class ResilientRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient
        self.server_url: str = self._servers[0]  # type: ignore[attr-defined]  # Django's, not in the stubs
        self.breaker = breaker_for(self.server_url)
        self.strict = StrictOperations(self)

    def redis_client(self) -> Any:
        """The redis-py client of the (write) server, for what the cache API does not offer (scripts, pipelines)."""
        return self._cache.get_client(write=True)

    def _call(self, operation: str, *args):
        """One cache operation through the server's breaker: raises :class:`Unavailable` when it fails or is
        skipped."""
        with self.breaker.guard("cache", "continuing without it"):
            return getattr(super(), operation)(*args)

    def _guarded(self, operation: str, default, *args):
        try:
            return self._call(operation, *args)
        except Unavailable:
            return default

    def get(self, key, default=None, version=None):
        return self._guarded("get", default, key, default, version)

    def get_many(self, keys, version=None):
        return self._guarded("get_many", {}, keys, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guarded("set", None, key, value, timeout, version)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guarded("add", False, key, value, timeout, version)

    def delete(self, key, version=None):
        return self._guarded("delete", False, key, version)

    def delete_many(self, keys, version=None):
        return self._guarded("delete_many", None, keys, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guarded("set_many", [], data, timeout, version)

    def incr(self, key, delta=1, version=None):
        return self._guarded("incr", None, key, delta, version)


class StrictOperations:
    """The operations whose failure the caller must tell apart from an answer (``add`` refused vs. Redis down)."""

    def __init__(self, cache: ResilientRedisCache):
        self._cache = cache

    def get(self, key, default=None, version=None):
        return self._cache._call("get", key, default, version)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        return self._cache._call("add", key, value, timeout, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> None:
        self._cache._call("set", key, value, timeout, version)


def control_cache() -> ResilientRedisCache:
    """The ``control`` cache (keys independent of the schema), as settings make it."""
    return cast(ResilientRedisCache, caches["control"])
