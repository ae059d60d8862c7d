"""The organization of the request: its profile and settings, and its deletion by an owner.

Authorization is declared: any member reads the profile; ``tenants.organization.update`` (Owners and Admins)
edits the settings; ``tenants.organization.delete`` (Owners only, ``rbac/roles.py``) deletes, and only as a person
signed in: an API key never deletes the organization, whatever its scopes.
"""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from config.api.viewsets import OrganizationViewSet
from config.permissions import MEMBER
from tenants import services
from tenants.models import Organization
from tenants.permissions import ORGANIZATION_DELETE, ORGANIZATION_UPDATE

from .serializers import CurrentOrganizationOutput, OrganizationDeletionOutput, OrganizationSettingsInput

TAGS = ["organizations"]


class CurrentOrganizationViewSet(OrganizationViewSet):
    queryset = Organization.objects.all()
    organization_field = "pk"
    action_permissions = {"current": MEMBER, "partial_update": ORGANIZATION_UPDATE, "destroy": ORGANIZATION_DELETE}

    def _output(self, organization: Organization) -> Response:
        return Response(CurrentOrganizationOutput(organization, context={"access": self.access}).data)

    @extend_schema(responses={200: CurrentOrganizationOutput}, tags=TAGS)
    def current(self, request):
        """The organization, its settings, and the caller's role, permissions, plan and features in it."""
        return self._output(request.tenant)

    @extend_schema(
        request=OrganizationSettingsInput,
        responses={
            200: CurrentOrganizationOutput,
            400: OpenApiResponse(
                description="`validation_error`, each field with its code: `invalid_time_zone`, `invalid_currency`, "
                "`invalid_logo_url`, `blank`"
            ),
        },
        tags=TAGS,
    )
    def partial_update(self, request):
        """Change the name, time zone, default currency or logo URL; all or nothing, audited
        (`organization.updated`). Analytics, campaign send windows and exports follow the time zone from the next
        request on; new pipelines (and so their deals) default to the currency."""
        data = OrganizationSettingsInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        organization = services.organization_update_settings(
            organization=request.tenant, actor=request.user, **data.validated_data
        )
        return self._output(organization)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "confirm", str, required=True, description="The organization's slug, typed back by its owner."
            )
        ],
        responses={
            202: OrganizationDeletionOutput,
            400: OpenApiResponse(description="`confirmation_required`: `confirm` is missing or not the slug"),
            403: OpenApiResponse(
                description="`permission_denied`: only an owner deletes (`tenants.organization.delete`), signed in "
                "as a person (never with an API key)"
            ),
        },
        tags=TAGS,
    )
    def destroy(self, request):
        """Delete the organization. It is suspended at once (no request or API key reaches it any more)
        and its data is purged after the grace period (`purge_after`, `TENANT_PURGE_AFTER_DAYS`); until then an
        operator can bring it back. Audited (`organization.deleted`)."""
        if self.access.principal != "user":
            raise exceptions.PermissionDenied("An API key cannot delete the organization; sign in as its owner.")
        organization = services.organization_delete_confirmed(
            organization=request.tenant, actor=request.user, confirmation=request.query_params.get("confirm")
        )
        body = {
            "id": organization.pk,
            "slug": organization.slug,
            "status": organization.status,
            "deleted_at": organization.deleted_at,
            "purge_after": services.purge_after(organization),
        }
        return Response(OrganizationDeletionOutput(body).data, status=status.HTTP_202_ACCEPTED)
