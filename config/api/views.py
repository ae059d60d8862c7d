"""Process health: /healthz answers while the process runs; /readyz checks PostgreSQL and Redis."""

from django.core.cache import caches
from django.db import connection
from django.http import JsonResponse
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.views import APIView

from .errors import problem_response
from .throttling import ClientRateThrottle


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    down = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        down.append("postgresql")
    try:
        caches["control"]._cache.get_client(write=False).ping()
    except Exception:
        down.append("redis")
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
        from identity.models import ApiKey

        return super().has_permission(request, view) and not isinstance(request.auth, ApiKey)


class AccountAPIView(APIView):
    """An endpoint about the signed-in person, not about one organization."""

    organization_scoped = False
    permission_classes = [SignedInPerson]
