"""How pipelines reacts to the control plane, which never imports the data plane: through its signals."""

from django_tenants.utils import tenant_context

from rbac.actor import SystemActor

from .services import pipeline_create_default


def default_pipeline_for_new_organization(sender, *, organization, **kwargs) -> None:
    """``tenants.signals.organization_provisioned``: a new organization starts with its default pipeline, created
    in its schema in the provisioning transaction (idempotent)."""
    with tenant_context(organization):
        pipeline_create_default(actor=SystemActor("organization provisioning"))
