from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class RbacConfig(AppConfig):
    name = "rbac"
    verbose_name = "Roles and memberships"

    def ready(self) -> None:
        from billing.features import Limit
        from billing.usage import register_counter

        from . import checks  # noqa: F401  (start-up check of viewset declarations)
        from .models import Membership

        # Every app declares its permission codes in <app>/permissions.py.
        autodiscover_modules("permissions")
        register_counter(Limit.SEATS, lambda org: Membership.objects.filter(organization=org, is_active=True).count())
