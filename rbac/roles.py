"""The default grant table of the system roles. Generated docs (docs/permissions.md) read it."""

from __future__ import annotations

from config.permissions import Scope, catalogue

from .choices import SystemRole

ALL, OWN = Scope.ALL, Scope.OWN

_OWNER_ONLY = {"billing.subscription.manage", "rbac.ownership.transfer", "tenants.organization.delete"}

_MANAGER: dict[str, Scope | None] = {
    "crm.*": ALL,
    "crm.custom_field.manage": None,
    "pipelines.*": ALL,
    "analytics.report.view": ALL,
    "assistant.copilot.use": ALL,
    "billing.subscription.view": ALL,
    "integrations.event.view": ALL,
    "rbac.member.view": ALL,
    "rbac.role.view": ALL,
    "tenants.organization.view": ALL,
}

_SALES_REP: dict[str, Scope | None] = {
    **{f"crm.{r}.{v}": OWN for r in ("company", "contact", "lead", "activity") for v in ("view", "update", "delete")},
    **{f"crm.{r}.create": ALL for r in ("company", "contact", "lead", "activity")},
    **{f"crm.{r}.export": OWN for r in ("company", "contact", "lead")},
    "crm.lead.convert": OWN,
    "crm.contact.merge": OWN,
    "crm.campaign.view": ALL,
    "pipelines.pipeline.view": ALL,
    "pipelines.deal.view": OWN,
    "pipelines.deal.create": ALL,
    "pipelines.deal.update": OWN,
    "pipelines.deal.move_stage": OWN,
    "pipelines.deal.close": OWN,
    "pipelines.deal.export": OWN,
    "analytics.report.view": ALL,
    "assistant.copilot.use": ALL,
    "rbac.member.view": ALL,
    "tenants.organization.view": ALL,
}

_SUPPORT: dict[str, Scope | None] = {
    **{f"crm.{r}.view": ALL for r in ("company", "contact", "lead", "activity")},
    "crm.contact.update": ALL,
    "crm.company.update": ALL,
    "crm.activity.create": ALL,
    "crm.activity.update": OWN,
    "crm.activity.delete": OWN,
    "pipelines.pipeline.view": ALL,
    "pipelines.deal.view": ALL,
    "assistant.copilot.use": ALL,
    "rbac.member.view": ALL,
    "tenants.organization.view": ALL,
}

_VIEWER: dict[str, Scope | None] = {
    "crm.*.view": ALL,
    "crm.campaign.view": ALL,
    "pipelines.pipeline.view": ALL,
    "pipelines.deal.view": ALL,
    "analytics.report.view": ALL,
    "assistant.copilot.use": ALL,  # the co-pilot offers a Viewer read tools only: he holds no write permission
    "rbac.member.view": ALL,
    "tenants.organization.view": ALL,
}


def _expand(spec: dict[str, Scope | None]) -> dict[str, str]:
    """Expand ``app.*`` and ``app.*.verb`` patterns over the catalogue; ``None`` removes a grant."""
    codes = list(catalogue())
    grants: dict[str, str] = {}
    for pattern, scope in spec.items():
        if "*" in pattern:
            prefix, _, suffix = pattern.partition("*")
            matches = [c for c in codes if c.startswith(prefix) and c.endswith(suffix)]
        else:
            matches = [pattern]
        for code in matches:
            if scope is None:
                grants.pop(code, None)
            else:
                grants[code] = str(scope)
    return grants


def default_grants(role: str) -> dict[str, str]:
    """``{permission code: "own" | "all"}`` for a system role."""
    everything = dict.fromkeys(catalogue(), str(ALL))
    if role == SystemRole.OWNER:
        return everything
    if role == SystemRole.ADMIN:
        return {code: scope for code, scope in everything.items() if code not in _OWNER_ONLY}
    table: dict[str, dict[str, Scope | None]] = {
        SystemRole.MANAGER: _MANAGER,
        SystemRole.SALES_REP: _SALES_REP,
        SystemRole.SUPPORT: _SUPPORT,
    }
    table[SystemRole.VIEWER] = _VIEWER
    return _expand(table[SystemRole(role)])
