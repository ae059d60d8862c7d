from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "crm.campaigns"
    label = "campaigns"
    verbose_name = "Campaigns"

    def ready(self) -> None:
        from anymail.signals import tracking

        from billing.features import Limit
        from billing.usage import register_counter
        from crm.timeline import register_timeline_source

        from . import selectors
        from .tracking import email_tracked

        register_counter(Limit.CAMPAIGN_MESSAGES_PER_MONTH, selectors.messages_this_month)
        register_timeline_source(selectors.TIMELINE_SOURCE)
        tracking.connect(email_tracked, dispatch_uid="campaigns.email_tracked")
