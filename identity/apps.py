from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "identity"
    verbose_name = "Identity"

    def ready(self) -> None:
        from rbac.signals import membership_ended, membership_started
        from tenants.middleware import register_credential

        from .apikeys import organization_of_request, revoke_keys_when_membership_changes
        from .authentication import connect_signals

        connect_signals()  # a saved or deleted user is dropped from the authentication cache, in every process
        membership_ended.connect(revoke_keys_when_membership_changes, dispatch_uid="identity.apikeys.ended")
        membership_started.connect(revoke_keys_when_membership_changes, dispatch_uid="identity.apikeys.started")
        register_credential(organization_of_request)  # an API key names its organization
