"""Process health: /healthz answers while the process runs; /readyz checks PostgreSQL and Redis."""

import asyncio

import psycopg
import redis.asyncio
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.views import APIView

from ..cache import control_cache
from .credentials import organization_credential
from .errors import problem_response
from .throttling import ClientRateThrottle


def healthz(request):
    return JsonResponse({"status": "ok"})


async def _postgresql_answers(params: dict) -> None:
    async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as conn:
        await conn.execute("SELECT 1")


async def _redis_answers(url: str, timeout: float) -> None:
    client = redis.asyncio.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _unreachable(probes: dict, timeout: float) -> list[str]:
    async def down(probe) -> bool:
        try:
            await asyncio.wait_for(probe, timeout)
        except Exception:
            return True
        return False

    results = await asyncio.gather(*(down(probe) for probe in probes.values()))
    return [name for name, is_down in zip(probes, results, strict=True) if is_down]


def readyz(request):
    """Both checks run side by side on connections of their own, each cut off after ``READYZ_TIMEOUT_SECONDS``:
    a frozen server (one that accepts connections and never answers) is reported down within that time,
    instead of holding the probe, and a request thread, for as long as the freeze lasts."""
    timeout = settings.READYZ_TIMEOUT_SECONDS
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    probes = {
        "postgresql": _postgresql_answers(params),
        "redis": _redis_answers(control_cache().server_url, timeout),
    }
    down = asyncio.run(_unreachable(probes, timeout))
    if down:
        return problem_response(
            status_code=503, code="not_ready", title="A dependency is unreachable.", detail=", ".join(down), down=down
        )
    return JsonResponse({"status": "ok", "checks": {"postgresql": "ok", "redis": "ok"}})


class PublicAPIView(APIView):
    """An endpoint that needs neither a login nor an organization (sign-up, sign-in, the price list)."""

    organization_scoped = False
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ClientRateThrottle]  # per client, by the view's ``throttle_scope``


class SignedInPerson(IsAuthenticated):
    """A person signed in with a session token; API keys act for an organization, not for a person."""

    def has_permission(self, request, view) -> bool:
        return super().has_permission(request, view) and organization_credential(request) is None


class AccountAPIView(APIView):
    """An endpoint about the signed-in person, not about one organization."""

    organization_scoped = False
    permission_classes = [SignedInPerson]
