"""Start-up check: every API endpoint is organization-scoped through the base viewset, or says it is not;
every viewset of control-plane rows limits them to the request's organization; every routed action declares its
permission; every declared code and feature exists."""

from django.conf import settings
from django.core import checks
from django.db import models
from django_tenants.utils import get_tenant_model


def organization_rows_problem(view, route: str) -> str | None:
    """Why ``view`` could serve another organization's control-plane rows, or None.

    Tenant data is isolated by its schema. A model of the public schema holds every organization's rows: a
    viewset serving one must declare ``organization_field`` (the foreign key to the organization, or ``"pk"``
    for the organization itself), which the base applies to every queryset; a public model that belongs to no
    organization is not served by an organization-scoped viewset at all."""
    queryset = getattr(view, "queryset", None)
    if queryset is None:
        return None
    model = queryset.model
    if model._meta.app_config.name in settings.TENANT_APPS:
        return None
    organization = get_tenant_model()
    if model is organization:
        fields = ["pk"]
    else:
        fields = [
            field.name
            for field in model._meta.get_fields()
            if isinstance(field, models.ForeignKey | models.OneToOneField) and field.related_model is organization
        ]
    name = f"{view.__name__} ({route}) serves {model._meta.label}"
    if not fields:
        return f"{name}, which belongs to no organization"
    if view.organization_field not in fields:
        return f"{name} without organization_field = {fields[0]!r}: it would list every organization's rows"
    return None


@checks.register(checks.Tags.security)
def check_authorization_declarations(app_configs, **kwargs):
    from billing.features import Feature
    from config.api.viewsets import OrganizationViewSet
    from config.permissions import MEMBER, catalogue

    from .declarations import api_views, routed_actions

    errors = []
    for route, view, _actions in api_views():
        if view is None:
            errors.append(checks.Error(f"{route} is not a DRF view", id="rbac.E001"))
        elif not issubclass(view, OrganizationViewSet) and getattr(view, "organization_scoped", True):
            errors.append(
                checks.Error(
                    f"{view.__name__} ({route}) neither inherits OrganizationViewSet "
                    "nor sets organization_scoped = False",
                    id="rbac.E002",
                )
            )
    organization_viewsets: dict[type, str] = {}  # each once, by its first route
    for route, view, _actions in api_views():
        if view is not None and issubclass(view, OrganizationViewSet):
            organization_viewsets.setdefault(view, route)
    for view, route in organization_viewsets.items():
        problem = organization_rows_problem(view, route)
        if problem:
            errors.append(checks.Error(problem, id="rbac.E006"))
    known = catalogue()
    features = {item.value for item in Feature}
    for routed in routed_actions():
        name = f"{routed.view.__name__}.{routed.action} ({routed.method} {routed.route})"
        if routed.permission is None:
            errors.append(checks.Error(f"{name} declares no permission", id="rbac.E003"))
        elif routed.permission != MEMBER and routed.permission not in known:
            errors.append(checks.Error(f"{name} declares unknown permission {routed.permission}", id="rbac.E004"))
        if routed.feature is not None and routed.feature not in features:
            errors.append(checks.Error(f"{name} declares unknown feature {routed.feature}", id="rbac.E005"))
    return errors
