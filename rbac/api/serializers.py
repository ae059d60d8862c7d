from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.permissions import Scope
from identity.api.serializers import UserOutput
from rbac.choices import InvitationStatus
from rbac.models import AuditEntry, Invitation, Membership, Role


class PermissionOutput(serializers.Serializer):
    code = serializers.CharField()
    description = serializers.CharField()
    scoped = serializers.BooleanField(help_text="Grantable for own records only, or for all.")


class RoleOutput(serializers.ModelSerializer):
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


class RoleSummary(serializers.ModelSerializer):
    class Meta:
        model = Role
        fields = ["id", "key", "name"]


class MemberOutput(serializers.ModelSerializer):
    user = UserOutput()
    role = RoleSummary()

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "is_active", "created_at", "deactivated_at"]


class MemberRoleInput(serializers.Serializer):
    role = serializers.IntegerField(help_text="Id of a role of this organization (system or custom).")


class TransferOwnershipInput(serializers.Serializer):
    to_member = serializers.IntegerField(help_text="Id of the membership that becomes owner.")


class InvitationOutput(serializers.ModelSerializer):
    role = RoleSummary()
    invited_by = serializers.EmailField(source="invited_by.email", default=None)
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


class InvitationAcceptInput(serializers.Serializer):
    token = serializers.CharField(max_length=200)
    password = serializers.CharField(max_length=128, required=False, style={"input_type": "password"})
    first_name = serializers.CharField(max_length=150, required=False, default="")
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class AuditEntryOutput(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = AuditEntry
        fields = ["id", "actor", "action", "target_type", "target_id", "before", "after", "created_at"]
