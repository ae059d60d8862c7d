from django.apps import AppConfig
from django.core import checks


def check_webhook_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Every webhook setting parses (integrations/conf.py), so a mistyped environment variable stops start-up."""
    from django.core.exceptions import ImproperlyConfigured

    from .conf import DEFAULTS, setting

    errors: list[checks.CheckMessage] = []
    for name in DEFAULTS:
        try:
            setting(name)
        except ImproperlyConfigured as exc:
            errors.append(checks.Error(str(exc), id="integrations.E001"))
    return errors


class IntegrationsConfig(AppConfig):
    name = "integrations"

    def ready(self) -> None:
        from billing.alerts import usage_threshold_reached
        from billing.features import Limit
        from billing.usage import register_counter

        from .selectors import webhook_endpoint_count
        from .usage_events import record_usage_threshold

        register_counter(Limit.WEBHOOK_ENDPOINTS, webhook_endpoint_count)
        usage_threshold_reached.connect(record_usage_threshold, dispatch_uid="integrations.usage_threshold")
        checks.register(check_webhook_settings)
