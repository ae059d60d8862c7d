"""Process health: /healthz answers while the process runs; /readyz checks PostgreSQL and Redis."""

from django.core.cache import caches
from django.db import connection
from django.http import JsonResponse

from .errors import problem_response


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
