"""Reads what every routed endpoint declares about authorization. Used by the start-up check, the
generated permission matrix (docs/permissions.md) and the meta-tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

API_PREFIX = "api/v1/"


@dataclass(frozen=True)
class RoutedAction:
    route: str
    method: str
    action: str | None
    view: type
    permission: str | None
    feature: str | None


def _walk(patterns, prefix: str = "") -> Iterator[tuple[str, object]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def _pretty(route: str) -> str:
    import re

    route = route.replace("^", "").replace("$", "").replace("\\.", ".")
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route)
    return "/" + route


def api_views() -> Iterator[tuple[str, type | None, dict[str, str] | None]]:
    """``(route, view class, {method: action} or None)`` for every endpoint under /api/v1/."""
    for route, callback in _walk(get_resolver().url_patterns):
        if not route.lstrip("^").startswith(API_PREFIX):
            continue
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        yield _pretty(route), view, getattr(callback, "actions", None)


def routed_actions() -> Iterator[RoutedAction]:
    from config.api.viewsets import OrganizationViewSet

    for route, view, actions in api_views():
        if view is None or not issubclass(view, OrganizationViewSet):
            continue
        for method, action in (actions or {}).items():
            if method in ("options", "head"):
                continue
            yield RoutedAction(
                route=route,
                method=method.upper(),
                action=action,
                view=view,
                permission=view.action_permissions.get(action),
                feature=view.action_features.get(action, view.required_feature),
            )
