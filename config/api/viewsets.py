"""The base of every organization-scoped viewset. It owns the spine: tenant, authentication, authorization,
the organization's rows and record scope. Subclasses declare and use hooks; they may not override the spine.

    class LeadViewSet(OrganizationViewSet):
        queryset = Lead.objects.all()                # the model; also what OpenAPI generation sees
        required_feature = None                      # every plan
        action_permissions = {"list": LEAD_VIEW, "create": LEAD_CREATE, ...}

        def prepare_queryset(self, queryset):        # optional: joins, annotations
            return queryset.select_related("owner")

    class MemberViewSet(OrganizationViewSet):
        queryset = Membership.objects.all()
        organization_field = "organization"          # control-plane rows: only the request's organization's

Tenant data needs no filter: the schema is the organization. Control-plane rows (public schema) carry the
organization in a column; a viewset serving them declares ``organization_field`` and the base limits every
queryset to the request's organization, whatever the hook returned (``rbac.checks`` refuses a viewset that serves
such a model without the declaration). Records with an owner (a queryset with ``visible_to``, e.g.
``rbac.actor.OwnedQuerySet``) are limited to the caller's own when their role grants the action's permission
with scope ``own``. Every routed action must be declared; a missing declaration is an error at start-up
(``manage.py check``) and in the test suite, never "allowed".

Who decides and what limits the rate are settings (``API_ORGANIZATION_POLICY``, ``API_ORGANIZATION_THROTTLES``:
``rbac.policy.OrganizationPolicy`` and ``billing.ratelimit.PlanRateThrottle``), so this plumbing, which every
app's API builds on, imports none of them.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, cast

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils.module_loading import import_string
from rest_framework import viewsets
from rest_framework.metadata import BaseMetadata

from . import idempotency
from .pagination import paginated_response

_SPINE = ("get_queryset", "get_permissions", "get_throttles", "initial", "check_permissions", "finalize_response")


@functools.cache
def _policy() -> type:
    return import_string(settings.API_ORGANIZATION_POLICY)


@functools.cache
def _throttles() -> tuple[type, ...]:
    return tuple(import_string(path) for path in settings.API_ORGANIZATION_THROTTLES)


class AllowedMethods(BaseMetadata):
    """``OPTIONS`` answers the methods the endpoint allows (also in ``Allow``), nothing about its fields: the
    OpenAPI document describes those, and field metadata would run the action's queryset without its permission."""

    def determine_metadata(self, request, view) -> dict[str, Any]:
        return {"name": view.get_view_name(), "methods": list(view.allowed_methods)}


class OrganizationViewSet(viewsets.GenericViewSet):
    metadata_class = AllowedMethods
    required_feature: ClassVar[str | None] = None
    action_features: ClassVar[dict[str, str]] = {}
    action_permissions: ClassVar[dict[str, str]] = {}
    #: The field of a control-plane model that names its organization ("pk" for the organization itself).
    organization_field: ClassVar[str | None] = None
    #: Also serve rows without an organization (the system roles every organization shares).
    shared_rows: ClassVar[bool] = False
    lookup_value_regex = r"\d+"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        overridden = [name for name in _SPINE if name in cls.__dict__]
        if overridden:
            raise TypeError(f"{cls.__name__} overrides {', '.join(overridden)}; use prepare_queryset() instead")

    # --- declarations, read by the policy ---
    @classmethod
    def permission_for(cls, action: str | None) -> str | None:
        """The permission the action declares; None when it declares none (the policy refuses it)."""
        return cls.action_permissions.get(action) if action is not None else None

    @classmethod
    def feature_for(cls, action: str | None) -> str | None:
        return cls.action_features.get(action, cls.required_feature) if action is not None else cls.required_feature

    # --- hooks ---
    def prepare_queryset(self, queryset: QuerySet | None) -> Any:
        """The records this viewset works on, from ``queryset`` (the model's rows; None when it has none): add
        joins and annotations. The base applies what the viewset declares to what this returns: the request's
        organization (``organization_field``), then the caller's record scope."""
        return queryset

    # --- the spine ---
    def get_permissions(self):
        return [_policy()()]

    def get_throttles(self):
        return [throttle() for throttle in _throttles()]

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
        model_rows = cast(Any, self).queryset  # a class attribute: the stubs read it as a manager's descriptor
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation: no request, no tenant
            return model_rows.none()
        request: Any = self.request  # tenant (the middleware) and access (the policy) are ours
        queryset = self.prepare_queryset(model_rows.all() if model_rows is not None else None)
        if self.organization_field is not None:  # whatever the hook returned: it cannot widen this
            mine = Q(**{self.organization_field: request.tenant.pk})
            if self.shared_rows:
                mine |= Q(**{f"{self.organization_field}__isnull": True})
            queryset = queryset.filter(mine)
        if hasattr(queryset, "visible_to"):  # records with an owner
            queryset = queryset.visible_to(request.access, self.permission_for(self.action))
        return queryset

    @property
    def access(self) -> Any:
        """The caller's access, decided by the policy (``rbac.access.Access``)."""
        return getattr(self.request, "access")  # noqa: B009  (set by the policy; unknown to the stubs)

    # --- glue shared by list and detail actions ---
    def paginated(self, queryset, serializer_class, *, load=None, **context):
        """The list's filters, search and ordering applied to ``queryset``, then one page of it; ``load`` turns the
        page's rows into what ``serializer_class`` serializes (see ``paginated_response``)."""
        context = {**self.get_serializer_context(), **context}
        return paginated_response(self, self.filter_queryset(queryset), serializer_class, load=load, context=context)

    def page_of(self, items, serializer_class=None, *, load=None, **context):
        """One page of ``items`` (a queryset or a list) as they are, a collection without the list's filters;
        ``load`` turns the page's rows into what ``serializer_class`` serializes (see ``paginated_response``)."""
        context = {**self.get_serializer_context(), **context}
        return paginated_response(self, items, serializer_class, load=load, context=context)
