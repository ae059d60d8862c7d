"""The base of every organization-scoped viewset. It owns the spine: tenant, authentication, authorization
and record scope. Subclasses declare and use hooks; they may not override the spine.

    class LeadViewSet(OrganizationViewSet):
        queryset = Lead.objects.all()         # the model; also what OpenAPI generation sees
        required_feature = None                      # every plan
        action_permissions = {"list": "crm.lead.view", "create": "crm.lead.create", ...}

        def scoped_queryset(self, queryset):         # optional: joins, annotations
            return queryset.select_related("owner")

Records with an owner (an ``OwnedQuerySet``) are limited to the caller's own when their role grants the
action's permission with scope ``own``. Every routed action must be declared; a missing declaration is an error at
start-up (``manage.py check``) and in the test suite, never "allowed".
"""

from __future__ import annotations

from typing import ClassVar

from rest_framework import viewsets

from billing.ratelimit import PlanRateThrottle
from rbac.policy import OrganizationPolicy
from rbac.scoping import OwnedQuerySet

from . import idempotency
from .pagination import paginated_response

_SPINE = ("get_queryset", "get_permissions", "get_throttles", "initial", "check_permissions", "finalize_response")


class OrganizationViewSet(viewsets.GenericViewSet):
    permission_classes: ClassVar[list] = [OrganizationPolicy]
    throttle_classes: ClassVar[list] = [PlanRateThrottle]
    required_feature: ClassVar[str | None] = None
    action_features: ClassVar[dict[str, str]] = {}
    action_permissions: ClassVar[dict[str, str]] = {}
    lookup_value_regex = r"\d+"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        overridden = [name for name in _SPINE if name in cls.__dict__]
        if overridden:
            raise TypeError(f"{cls.__name__} overrides {', '.join(overridden)}; use scoped_queryset() instead")

    # --- declarations, read by the policy ---
    @classmethod
    def permission_for(cls, action: str | None) -> str:
        try:
            return cls.action_permissions[action]
        except KeyError:
            from rbac.errors import PermissionDenied

            raise PermissionDenied(f"The action {action!r} is not declared.") from None

    @classmethod
    def feature_for(cls, action: str | None) -> str | None:
        return cls.action_features.get(action, cls.required_feature)

    # --- hooks ---
    def scoped_queryset(self, queryset):
        """The records this viewset works on; receives ``queryset.all()`` (or None when it has none)."""
        return queryset

    # --- the spine ---
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, the policy, rate limits
        method = request.method.lower()
        if hasattr(self, method):
            setattr(self, method, idempotency.guard(self, getattr(self, method)))

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        for name, value in getattr(request, "rate_limit_headers", {}).items():
            response[name] = value
        return response

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation: no request, no tenant
            return self.queryset.none()
        queryset = self.scoped_queryset(self.queryset.all() if self.queryset is not None else None)
        if isinstance(queryset, OwnedQuerySet):
            queryset = queryset.visible_to(self.request.access, self.permission_for(self.action))
        return queryset

    @property
    def access(self):
        return self.request.access

    # --- glue shared by list and detail actions ---
    def paginated(self, queryset, serializer_class, **context):
        """The list's filters, search and ordering applied to ``queryset``, then one page of it."""
        context = {**self.get_serializer_context(), **context}
        return paginated_response(self, self.filter_queryset(queryset), serializer_class, context=context)

    def page_of(self, items, serializer_class=None, *, load=None, **context):
        """One page of ``items`` (a queryset or a list) as they are, a collection without the list's filters;
        ``load`` turns the page's rows into what ``serializer_class`` serializes (see ``paginated_response``)."""
        context = {**self.get_serializer_context(), **context}
        return paginated_response(self, items, serializer_class, load=load, context=context)
