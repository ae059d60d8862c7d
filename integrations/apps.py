from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"

    def ready(self) -> None:
        from billing.features import Limit
        from billing.usage import register_counter

        from .selectors import webhook_endpoint_count

        register_counter(Limit.WEBHOOK_ENDPOINTS, webhook_endpoint_count)
