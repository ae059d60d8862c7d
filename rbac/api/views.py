from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from billing.features import Feature
from config.api import filters as api_filters
from config.api.errors import ValidationFailed
from config.api.pagination import paginated_response
from config.api.views import AccountAPIView
from config.api.viewsets import OrganizationViewSet
from config.permissions import MEMBER, catalogue
from rbac import permissions as perms
from rbac import selectors, services
from rbac.choices import InvitationStatus
from rbac.errors import PermissionDenied
from rbac.models import AuditEntry, Invitation, Membership, Role

from .serializers import (
    AuditEntryOutput,
    InvitationInput,
    InvitationOutput,
    MemberOutput,
    MemberRoleInput,
    PermissionOutput,
    RoleInput,
    RoleOutput,
    RoleUpdateInput,
    TransferOwnershipInput,
)


class PermissionCatalogueView(AccountAPIView):
    """Every permission code the product knows. Needs a login, not an organization."""

    @extend_schema(responses={200: PermissionOutput(many=True)}, tags=["roles"])
    def get(self, request):
        return paginated_response(self, list(catalogue().values()), PermissionOutput)


def _role_in_scope(view, role_id):
    role = selectors.roles_for(organization=view.request.tenant).filter(pk=role_id).first()
    if role is None:
        raise ValidationFailed("No such role.", field="role", code="does_not_exist")
    return role


class RoleViewSet(OrganizationViewSet):
    queryset = Role.objects.all()
    action_permissions = {
        "list": perms.ROLE_VIEW,
        "retrieve": perms.ROLE_VIEW,
        "create": perms.ROLE_MANAGE,
        "partial_update": perms.ROLE_MANAGE,
        "destroy": perms.ROLE_MANAGE,
    }
    action_features = dict.fromkeys(("create", "partial_update", "destroy"), Feature.CUSTOM_ROLES)
    organization_field = "organization"
    shared_rows = True  # the system roles

    @extend_schema(responses={200: RoleOutput(many=True)}, tags=["roles"])
    def list(self, request):
        return self.page_of(self.get_queryset(), RoleOutput)

    @extend_schema(responses={200: RoleOutput}, tags=["roles"])
    def retrieve(self, request, pk=None):
        return Response(RoleOutput(self.get_object()).data)

    @extend_schema(request=RoleInput, responses={201: RoleOutput}, tags=["roles"])
    def create(self, request):
        data = RoleInput(data=request.data)
        data.is_valid(raise_exception=True)
        role = services.role_create(
            organization=request.tenant, actor=request.user, actor_grants=self.access.grants, **data.validated_data
        )
        return Response(RoleOutput(role).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RoleUpdateInput, responses={200: RoleOutput}, tags=["roles"])
    def partial_update(self, request, pk=None):
        data = RoleUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        role = services.role_update(
            role=self.get_object(), actor=request.user, actor_grants=self.access.grants, **data.validated_data
        )
        return Response(RoleOutput(role).data)

    @extend_schema(responses={204: None}, tags=["roles"])
    def destroy(self, request, pk=None):
        services.role_delete(role=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberFilter(api_filters.FilterSet):
    role = filters.CharFilter(field_name="role__key")
    is_active = filters.BooleanFilter()


OWNER_RULE = (
    "An owner's membership is changed (role, activation, removal) only by someone with `rbac.ownership.transfer`, "
    "else 403 `permission_denied`; the last active owner stays (409 `last_owner`)."
)


class MemberViewSet(OrganizationViewSet):
    queryset = Membership.objects.all()
    action_permissions = {
        "list": perms.MEMBER_VIEW,
        "retrieve": perms.MEMBER_VIEW,
        "partial_update": perms.MEMBER_MANAGE,
        "deactivate": perms.MEMBER_MANAGE,
        "activate": perms.MEMBER_MANAGE,
        "destroy": perms.MEMBER_MANAGE,
        "leave": MEMBER,
        "transfer_ownership": perms.OWNERSHIP_TRANSFER,
    }
    filterset_class = MemberFilter
    search_fields = ["user__email", "user__first_name", "user__last_name"]
    ordering_fields = ["created_at", "user__email"]
    ordering = ["created_at"]
    organization_field = "organization"

    def prepare_queryset(self, queryset):
        return queryset.select_related("user", "role")

    @extend_schema(responses={200: MemberOutput(many=True)}, tags=["members"])
    def list(self, request):
        return self.paginated(self.get_queryset(), MemberOutput)

    @extend_schema(responses={200: MemberOutput}, tags=["members"])
    def retrieve(self, request, pk=None):
        return Response(MemberOutput(self.get_object()).data)

    @extend_schema(request=MemberRoleInput, responses={200: MemberOutput}, tags=["members"], description=OWNER_RULE)
    def partial_update(self, request, pk=None):
        data = MemberRoleInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_change_role(
            membership=self.get_object(),
            role=_role_in_scope(self, data.validated_data["role"]),
            actor=request.user,
            actor_grants=self.access.grants,
        )
        return Response(MemberOutput(membership).data)

    @extend_schema(request=None, responses={200: MemberOutput}, tags=["members"], description=OWNER_RULE)
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        membership = services.membership_set_active(
            membership=self.get_object(), active=False, actor=request.user, actor_grants=self.access.grants
        )
        return Response(MemberOutput(membership).data)

    @extend_schema(request=None, responses={200: MemberOutput}, tags=["members"], description=OWNER_RULE)
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        membership = services.membership_set_active(
            membership=self.get_object(), active=True, actor=request.user, actor_grants=self.access.grants
        )
        return Response(MemberOutput(membership).data)

    @extend_schema(responses={204: None}, tags=["members"], description=OWNER_RULE)
    def destroy(self, request, pk=None):
        services.membership_remove(membership=self.get_object(), actor=request.user, actor_grants=self.access.grants)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={204: None}, tags=["members"])
    @action(detail=False, methods=["post"])
    def leave(self, request):
        if self.access.principal != "user":
            raise PermissionDenied("Only the member, signed in, can leave; an API key cannot.")
        membership = self.get_queryset().get(pk=self.access.membership_id)
        services.membership_leave(membership=membership, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=TransferOwnershipInput, responses={200: MemberOutput}, tags=["members"])
    @action(detail=False, methods=["post"], url_path="transfer-ownership")
    def transfer_ownership(self, request):
        data = TransferOwnershipInput(data=request.data)
        data.is_valid(raise_exception=True)
        members = self.get_queryset()
        target = members.filter(pk=data.validated_data["to_member"], is_active=True).first()
        if target is None:
            raise ValidationFailed("No such active member.", field="to_member", code="does_not_exist")
        services.ownership_transfer(
            organization=request.tenant,
            from_membership=members.get(pk=self.access.membership_id),
            to_membership=target,
            actor=request.user,
        )
        return Response(MemberOutput(members.get(pk=target.pk)).data)


class InvitationFilter(api_filters.FilterSet):
    status = filters.ChoiceFilter(choices=InvitationStatus.choices, method="filter_status")

    class Meta:
        model = Invitation
        fields = ["status"]

    def filter_status(self, queryset, name, value):
        return selectors.invitations_with_status(queryset, value)


class InvitationViewSet(OrganizationViewSet):
    queryset = Invitation.objects.all()
    action_permissions = {
        "list": perms.MEMBER_MANAGE,
        "retrieve": perms.MEMBER_MANAGE,
        "create": perms.MEMBER_MANAGE,
        "resend": perms.MEMBER_MANAGE,
        "revoke": perms.MEMBER_MANAGE,
    }
    filterset_class = InvitationFilter
    ordering = ["-created_at"]
    organization_field = "organization"

    def prepare_queryset(self, queryset):
        return queryset.select_related("role", "invited_by")

    @extend_schema(responses={200: InvitationOutput(many=True)}, tags=["members"])
    def list(self, request):
        return self.paginated(self.get_queryset(), InvitationOutput)

    @extend_schema(responses={200: InvitationOutput}, tags=["members"])
    def retrieve(self, request, pk=None):
        return Response(InvitationOutput(self.get_object()).data)

    @extend_schema(request=InvitationInput, responses={201: InvitationOutput}, tags=["members"])
    def create(self, request):
        data = InvitationInput(data=request.data)
        data.is_valid(raise_exception=True)
        invitation, _token = services.invitation_create(
            organization=request.tenant,
            email=data.validated_data["email"],
            role=_role_in_scope(self, data.validated_data["role"]),
            actor=request.user,
            actor_grants=self.access.grants,
        )
        return Response(InvitationOutput(invitation).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: InvitationOutput}, tags=["members"])
    @action(detail=True, methods=["post"])
    def resend(self, request, pk=None):
        invitation, _token = services.invitation_resend(invitation=self.get_object(), actor=request.user)
        return Response(InvitationOutput(invitation).data)

    @extend_schema(request=None, responses={200: InvitationOutput}, tags=["members"])
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        invitation = services.invitation_revoke(invitation=self.get_object(), actor=request.user)
        return Response(InvitationOutput(invitation).data)


class AuditLogFilter(api_filters.FilterSet):
    action = filters.CharFilter()
    target_type = filters.CharFilter()
    actor = filters.CharFilter(field_name="actor_label")
    created_after = api_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = api_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["action", "target_type", "actor"]


class AuditLogViewSet(OrganizationViewSet):
    queryset = AuditEntry.objects.all()
    action_permissions = {"list": perms.AUDIT_VIEW}
    filterset_class = AuditLogFilter
    ordering = ["-created_at", "-pk"]
    organization_field = "organization"

    def prepare_queryset(self, queryset):
        return queryset.select_related("actor")

    @extend_schema(responses={200: AuditEntryOutput(many=True)}, tags=["audit"])
    def list(self, request):
        return self.paginated(self.get_queryset(), AuditEntryOutput)
