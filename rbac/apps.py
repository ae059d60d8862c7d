from django.apps import AppConfig


class RbacConfig(AppConfig):
    name = "rbac"
    verbose_name = "Roles and memberships"

    def ready(self) -> None:
        from . import access  # noqa: F401  (cache invalidation receivers)
