from rest_framework import serializers

from rbac.models import Membership
from tenants.models import Organization


class OrganizationOutput(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "slug", "name", "status", "created_at"]


class CurrentOrganizationOutput(OrganizationOutput):
    role = serializers.SerializerMethodField()
    domains = serializers.SerializerMethodField()

    class Meta(OrganizationOutput.Meta):
        fields = [*OrganizationOutput.Meta.fields, "role", "domains"]

    def get_role(self, obj) -> str:
        membership: Membership = self.context["membership"]
        return membership.role

    def get_domains(self, obj) -> list[str]:
        return [domain.domain for domain in obj.domains.all()]
