from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"
    verbose_name = "Pipelines and deals"

    def ready(self) -> None:
        from billing.features import Limit
        from billing.usage import register_counter

        from .selectors import deal_count

        register_counter(Limit.DEALS, deal_count)
