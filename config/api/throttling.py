"""Per-client throttling of public endpoints (sign-up, sign-in, codes, invitations).

Organization-scoped endpoints are limited by plan instead (``billing.ratelimit.PlanRateThrottle``).
"""

from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle


def client_ip(request) -> str:
    """The caller's address: ``X-Forwarded-For`` is trusted only behind ``NUM_PROXIES`` known proxies, so a client
    cannot pick the address its failed sign-ins are counted against."""
    remote = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    num_proxies = api_settings.NUM_PROXIES
    if not num_proxies or not forwarded:
        return remote
    addresses = [address.strip() for address in forwarded.split(",")]
    return addresses[-min(num_proxies, len(addresses))] or remote


class ClientRateThrottle(ScopedRateThrottle):
    """DRF's per-scope throttle (the view's ``throttle_scope``, rates in ``DEFAULT_THROTTLE_RATES``), counting per
    :func:`client_ip` (DRF alone trusts any ``X-Forwarded-For``). A view without a scope is not throttled."""

    def get_ident(self, request) -> str:
        return client_ip(request)
