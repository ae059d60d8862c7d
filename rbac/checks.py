"""Start-up check: every API endpoint is organization-scoped through the base viewset, or says it is not;
every routed action declares its permission; every declared code and feature exists."""

from django.core import checks


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
