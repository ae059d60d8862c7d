"""The one place that decides whether a request may reach an organization-scoped endpoint."""

from rest_framework.permissions import BasePermission

from tenants.errors import OrganizationNotFound, OrganizationRequired

from .access import membership_for


class OrganizationAccess(BasePermission):
    """Authenticated, addressed to an organization, and a member of it.

    A caller who is not a member learns nothing about the organization: the answer is the same 404
    as for an organization that does not exist.
    """

    def has_permission(self, request, view) -> bool:
        if getattr(request, "tenant", None) is None:
            raise OrganizationRequired()
        if not request.user or not request.user.is_authenticated:
            return False  # DRF answers 401 with the authenticator's challenge
        membership = membership_for(user=request.user, organization=request.tenant)
        if membership is None:
            raise OrganizationNotFound()
        request.membership = membership
        return True
