from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"
    verbose_name = "Pipelines and deals"

    def ready(self) -> None:
        from billing.features import Limit
        from billing.usage import register_counter
        from tenants.signals import organization_provisioned

        from . import exports
        from .receivers import default_pipeline_for_new_organization
        from .selectors import deal_count

        register_counter(Limit.DEALS, deal_count)
        exports.register()  # the deals export's columns, in crm's export registry
        organization_provisioned.connect(default_pipeline_for_new_organization, dispatch_uid="pipelines.default")
