from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"

    def ready(self) -> None:
        from billing.features import Limit
        from billing.usage import register_counter

        from .selectors import contact_count, custom_field_count

        register_counter(Limit.CONTACTS, contact_count)
        register_counter(Limit.CUSTOM_FIELDS, custom_field_count)
