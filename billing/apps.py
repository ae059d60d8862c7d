from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from tenants.signals import organization_deleted

        from .features import Limit
        from .metering import copilot_messages_this_month
        from .receivers import stop_charging_deleted_organization
        from .usage import register_counter

        # Co-pilot messages are counted by billing's meter (billing.metering); campaign messages by campaigns.
        register_counter(Limit.COPILOT_MESSAGES_PER_MONTH, copilot_messages_this_month)
        organization_deleted.connect(stop_charging_deleted_organization, dispatch_uid="billing.deleted_organization")
