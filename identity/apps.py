from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "identity"
    verbose_name = "Identity"

    def ready(self) -> None:
        from .authentication import connect_signals

        connect_signals()  # a saved or deleted user is dropped from the authentication cache, in every process
