from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"
    verbose_name = "Pipelines and deals"

    def ready(self) -> None:
        from billing.features import Limit
        from billing.usage import register_counter
        from crm import records
        from crm.choices import RecordType
        from crm.models import Company, Contact
        from tenants.signals import organization_provisioned

        from . import exports
        from .models import Deal
        from .permissions import DEAL_VIEW
        from .receivers import default_pipeline_for_new_organization
        from .selectors import deal_count
        from .services import deal_create_from_lead

        register_counter(Limit.DEALS, deal_count)
        exports.register()  # the deals export's columns, in crm's export registry
        organization_provisioned.connect(default_pipeline_for_new_organization, dispatch_uid="pipelines.default")
        # crm's record kernel, filled from above so crm never imports pipelines (docs/decisions/0017).
        records.register_record_model(RecordType.DEAL, Deal, view=DEAL_VIEW)
        records.register_reference(Contact, records.Reference(model=Deal, field="contact", name="deals"))
        records.register_reference(Company, records.Reference(model=Deal, field="company", name="deals"))
        records.register_deal_opener(deal_create_from_lead)
