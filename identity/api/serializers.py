from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.outputs import ModelOutput
from config.api.references import PersonReference
from identity.models import User
from rbac.api.serializers import OrganizationOfMemberOutput, RoleSummary
from rbac.selectors import memberships_of
from tenants.models import Organization


class OrganizationSummaryOutput(ModelOutput):
    class Meta:
        model = Organization
        fields = ["id", "slug", "name", "status", "created_at"]


class UserOutput(ModelOutput):
    class Meta:
        model = User
        fields = ["id", "email", "first_name", "last_name", "date_joined"]


class MeOutput(UserOutput):
    organizations = serializers.SerializerMethodField()

    class Meta(UserOutput.Meta):
        fields = [*UserOutput.Meta.fields, "organizations"]

    @extend_schema_field(OrganizationOfMemberOutput(many=True))
    def get_organizations(self, obj) -> list[dict]:
        """The organizations the person belongs to, with their role in each."""
        return list(OrganizationOfMemberOutput(memberships_of(user=obj), many=True).data)


class RegisterInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    first_name = serializers.CharField(max_length=150)
    last_name = serializers.CharField(max_length=150, allow_blank=True, required=False, default="")
    organization_name = serializers.CharField(max_length=200)


class TokenInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})


class SessionOutput(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
    user = UserOutput()
    organizations = OrganizationOfMemberOutput(many=True, help_text="With the person's role in each.")


class RegisterOutput(SessionOutput):
    organization = OrganizationSummaryOutput()


class RefreshInput(serializers.Serializer):
    refresh = serializers.CharField()


class TokenPairOutput(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class MeUpdateInput(serializers.Serializer):
    first_name = serializers.CharField(max_length=150, required=False)
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True)


class PasswordChangeInput(serializers.Serializer):
    current_password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    new_password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})


class PasswordResetInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class PasswordResetConfirmInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    code = serializers.CharField(max_length=16, help_text="The 6-digit code from the e-mail.")
    new_password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})


class GoogleSignInInput(serializers.Serializer):
    id_token = serializers.CharField(max_length=8192, help_text="The ID token (JWT) from Google Identity Services.")


class InvitationAcceptInput(serializers.Serializer):
    token = serializers.CharField(max_length=200)
    password = serializers.CharField(max_length=128, required=False, style={"input_type": "password"})
    first_name = serializers.CharField(max_length=150, required=False, default="")
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class InvitationOrganizationOutput(serializers.Serializer):
    name = serializers.CharField()
    logo_url = serializers.CharField(help_text="https URL of the organization's logo; empty when it has none.")


class InvitationPreviewOutput(serializers.Serializer):
    """What an invitee sees before accepting: where to, from whom, with which role, until when."""

    organization = InvitationOrganizationOutput()
    email = serializers.EmailField(help_text="The address invited: the account that accepts must have it.")
    inviter = PersonReference(
        source="invited_by", allow_null=True, help_text="Null when the inviter's account is gone."
    )
    role = RoleSummary()
    status = serializers.ChoiceField(choices=["pending"], help_text="Always `pending`: other invitations are 404/410.")
    expires_at = serializers.DateTimeField()
