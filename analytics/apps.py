from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"

    def ready(self) -> None:
        from integrations.outbox import recorded

        from .events import invalidate_on_events

        recorded.connect(invalidate_on_events, dispatch_uid="analytics.invalidate_on_events")
