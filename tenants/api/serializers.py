from rest_framework import serializers

from config.api.outputs import ModelOutput
from tenants.models import Organization


class OrganizationOutput(ModelOutput):
    class Meta:
        model = Organization
        fields = ["id", "slug", "name", "status", "created_at"]


class CurrentOrganizationOutput(OrganizationOutput):
    time_zone = serializers.CharField(
        source="effective_time_zone", help_text="IANA time zone name; the deployment's until the organization sets one."
    )
    currency = serializers.CharField(help_text="ISO 4217 code: the default currency of new pipelines and their deals.")
    logo_url = serializers.CharField(help_text="https URL of the logo; empty when there is none.")
    role = serializers.SerializerMethodField()
    permissions = serializers.SerializerMethodField()
    plan = serializers.SerializerMethodField()
    features = serializers.SerializerMethodField()

    class Meta(OrganizationOutput.Meta):
        fields = [
            *OrganizationOutput.Meta.fields,
            "time_zone",
            "currency",
            "logo_url",
            "role",
            "permissions",
            "plan",
            "features",
        ]

    def get_role(self, obj) -> str:
        return self.context["access"].role_key

    def get_permissions(self, obj) -> dict[str, str]:
        """What the caller may do here: permission code → "own" or "all"."""
        return self.context["access"].grants

    def get_plan(self, obj) -> str:
        return self.context["access"].entitlements.plan_code

    def get_features(self, obj) -> list[str]:
        return sorted(self.context["access"].entitlements.features)


class OrganizationSettingsInput(serializers.Serializer):
    """Any of the settings; those left out stay as they are. Validated by ``tenants.services``: an unknown time
    zone, currency or a logo URL that is not https is 400 ``validation_error`` with the field's code."""

    name = serializers.CharField(max_length=200, help_text="Shown to members and in invitations.")
    time_zone = serializers.CharField(
        max_length=64, help_text="IANA time zone name, e.g. Europe/Paris (`invalid_time_zone`)."
    )
    currency = serializers.CharField(max_length=3, help_text="ISO 4217 code, e.g. EUR (`invalid_currency`).")
    logo_url = serializers.CharField(
        max_length=2000,
        allow_blank=True,
        allow_null=True,
        help_text="https URL of the logo (`invalid_logo_url`); empty or null removes it. Never fetched by the server.",
    )


class OrganizationDeletionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    status = serializers.CharField(help_text="`deleted`: no request reaches the organization any more.")
    deleted_at = serializers.DateTimeField()
    purge_after = serializers.DateTimeField(help_text="From then on its data is erased for good.")
