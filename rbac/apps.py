from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class RbacConfig(AppConfig):
    name = "rbac"
    verbose_name = "Roles and memberships"

    def ready(self) -> None:
        from billing.features import Limit
        from billing.notify import register_owner_emails
        from billing.usage import register_counter
        from config import audit as audit_door

        from . import audit, checks  # noqa: F401  (checks: the start-up check of viewset declarations)
        from .choices import SystemRole
        from .models import Membership

        audit_door.register_writer(audit.record)

        # Every app declares its permission codes in <app>/permissions.py.
        autodiscover_modules("permissions")
        register_counter(Limit.SEATS, lambda org: Membership.objects.filter(organization=org, is_active=True).count())
        register_owner_emails(
            lambda org: list(
                Membership.objects.filter(
                    organization=org, is_active=True, role__organization=None, role__key=SystemRole.OWNER
                ).values_list("user__email", flat=True)
            )
        )
