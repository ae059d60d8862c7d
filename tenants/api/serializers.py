from rest_framework import serializers

from tenants.models import Organization


class OrganizationOutput(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "slug", "name", "status", "created_at"]


class CurrentOrganizationOutput(OrganizationOutput):
    role = serializers.SerializerMethodField()
    permissions = serializers.SerializerMethodField()
    plan = serializers.SerializerMethodField()
    features = serializers.SerializerMethodField()

    class Meta(OrganizationOutput.Meta):
        fields = [*OrganizationOutput.Meta.fields, "role", "permissions", "plan", "features"]

    def get_role(self, obj) -> str:
        return self.context["access"].role_key

    def get_permissions(self, obj) -> dict[str, str]:
        """What the caller may do here: permission code → "own" or "all"."""
        return self.context["access"].grants

    def get_plan(self, obj) -> str:
        return self.context["access"].entitlements.plan_code

    def get_features(self, obj) -> list[str]:
        return sorted(self.context["access"].entitlements.features)
