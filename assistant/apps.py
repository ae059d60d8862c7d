from django.apps import AppConfig


class AssistantConfig(AppConfig):
    """Co-pilot messages are counted by billing's meter (``billing.metering``), which also answers the plan's
    ``copilot_messages_per_month``."""

    name = "assistant"
