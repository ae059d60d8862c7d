from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.outputs import ModelOutput
from config.api.references import PersonReference
from config.permissions import Scope
from rbac.choices import InvitationStatus
from rbac.models import AuditEntry, Invitation, Membership, Role
from tenants.choices import OrganizationStatus


class PermissionOutput(serializers.Serializer):
    code = serializers.CharField()
    description = serializers.CharField()
    scoped = serializers.BooleanField(help_text="Grantable for own records only, or for all.")


class RoleOutput(ModelOutput):
    is_system = serializers.BooleanField(read_only=True)
    grants = serializers.SerializerMethodField()

    class Meta:
        model = Role
        fields = ["id", "key", "name", "description", "is_system", "grants", "created_at", "updated_at"]

    def get_grants(self, obj) -> dict[str, str]:
        return obj.effective_grants()


class RoleInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    grants = serializers.DictField(
        child=serializers.ChoiceField(choices=[s.value for s in Scope]),
        help_text='Permission code → "own" or "all".',
    )


class RoleUpdateInput(RoleInput):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    grants = serializers.DictField(child=serializers.ChoiceField(choices=[s.value for s in Scope]), required=False)


class RoleSummary(ModelOutput):
    class Meta:
        model = Role
        fields = ["id", "key", "name"]


class MemberOutput(ModelOutput):
    """A membership: its own ``id`` (what ``/members/{id}/`` takes) and its user (whose ``id`` owner fields
    take)."""

    user = PersonReference()
    role = RoleSummary()

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "is_active", "created_at", "deactivated_at"]


class MemberRoleInput(serializers.Serializer):
    role = serializers.IntegerField(help_text="Id of a role of this organization (system or custom).")


class TransferOwnershipInput(serializers.Serializer):
    to_member = serializers.IntegerField(help_text="Id of the membership that becomes owner.")


class InvitationOutput(ModelOutput):
    role = RoleSummary()
    invited_by = PersonReference(allow_null=True)
    status = serializers.SerializerMethodField()

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "status", "invited_by", "created_at", "expires_at", "accepted_at"]

    @extend_schema_field(serializers.ChoiceField(choices=InvitationStatus.choices))
    def get_status(self, obj) -> str:
        return obj.effective_status


class InvitationInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.IntegerField()


class AuditEntryOutput(ModelOutput):
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = AuditEntry
        fields = ["id", "actor", "action", "target_type", "target_id", "before", "after", "created_at"]


class OrganizationOfMemberOutput(serializers.Serializer):
    """An organization the caller belongs to, with their role in it (read from the membership)."""

    id = serializers.IntegerField(source="organization.id")
    slug = serializers.CharField(source="organization.slug")
    name = serializers.CharField(source="organization.name")
    status = serializers.ChoiceField(source="organization.status", choices=OrganizationStatus.choices)
    created_at = serializers.DateTimeField(source="organization.created_at")
    role = RoleSummary()
