from django.apps import AppConfig


class AssistantConfig(AppConfig):
    name = "assistant"

    def ready(self) -> None:
        from billing.features import Limit
        from billing.usage import register_counter

        from . import selectors

        register_counter(Limit.COPILOT_MESSAGES_PER_MONTH, selectors.messages_this_month)
