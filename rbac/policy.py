"""The one place that decides whether a request may run a viewset action.

A viewset declares what it needs (``config.api.viewsets.OrganizationViewSet``)::

    required_feature = Feature.CUSTOM_ROLES                 # or None: every plan
    action_permissions = {"list": ROLE_VIEW, "create": ROLE_MANAGE, "leave": MEMBER}

and :class:`OrganizationPolicy` decides, checking in this order:

1. the caller is authenticated, else 401 (before anything about the organization is told);
2. an organization is addressed, else 400 ``organization_required``; one that does not resolve (unknown,
   suspended, deleted, not the API key's) is 404 ``organization_not_found``;
3. the caller is an active member (for an API key: its creator is), else the same 404, to the byte;
4. a caller using an API key has a plan with API keys, else 403 ``feature_not_in_plan``;
5. the action declares a permission and the role grants it, else 403 ``permission_denied``;
6. the plan has the action's feature, else 403 ``feature_not_in_plan`` naming the cheapest plan that has it.

A member who may not do something is told so whatever the plan; only one who may is told which plan would let
them. The caller's access (grants with their scope, entitlements) is left on the request (``request.access``)
for the viewset's queryset and services.
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from billing.errors import FeatureNotInPlan
from billing.features import Feature
from config.permissions import MEMBER
from tenants.errors import OrganizationNotFound, OrganizationRequired
from tenants.middleware import UNRESOLVED_ATTRIBUTE

from .access import access_for_request
from .errors import PermissionDenied


def feature_not_in_plan(feature: str) -> FeatureNotInPlan:
    from billing.selectors import cheapest_plan_with

    plan = cheapest_plan_with(feature=feature)
    extra = {"feature": str(feature), "plan": {"code": plan.code, "name": plan.name} if plan else None}
    detail = f"Your plan does not include {feature}." + (f" Upgrade to {plan.name} to use it." if plan else "")
    return FeatureNotInPlan(detail, extra=extra)


class OrganizationPolicy(BasePermission):
    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False  # DRF answers 401 with the authenticator's challenge, whatever organization was named
        if getattr(request, "tenant", None) is None:
            if getattr(request, UNRESOLVED_ATTRIBUTE, False):
                raise OrganizationNotFound()
            raise OrganizationRequired()
        access = getattr(request, "access", None) or access_for_request(request)
        if access is None:
            raise OrganizationNotFound()
        request.access = access
        if access.principal == "api_key" and not access.entitlements.has(Feature.API_KEYS):
            raise feature_not_in_plan(Feature.API_KEYS)
        if view.action in (None, "metadata"):
            return True  # an unrouted method: DRF answers 405; OPTIONS: the allowed methods, to any member

        permission = view.permission_for(view.action)
        if permission is None:
            raise PermissionDenied(f"The action {view.action!r} is not declared.")
        if permission != MEMBER and access.scope(permission) is None:
            raise PermissionDenied(extra={"permission": permission})
        feature = view.feature_for(view.action)
        if feature and not access.entitlements.has(feature):
            raise feature_not_in_plan(feature)
        return True
