"""Request-body references, resolved within the caller's reach: a foreign id is "does not exist"."""

from django.db import connection
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from identity.models import User
from rbac.models import Membership


@extend_schema_field(OpenApiTypes.INT)
class MemberField(serializers.PrimaryKeyRelatedField):
    """A user id that must belong to an active member of the request's organization."""

    def get_queryset(self):
        request = self.context["request"]
        member_ids = Membership.objects.filter(organization_id=request.tenant.pk, is_active=True).values("user_id")
        return User.objects.filter(pk__in=member_ids)


@extend_schema_field(OpenApiTypes.INT)
class ScopedRecordField(serializers.PrimaryKeyRelatedField):
    """An id of a record the caller may see (``view`` permission scope applies)."""

    def __init__(self, *, model, permission: str, **kwargs):
        self.model, self.permission = model, permission
        super().__init__(**kwargs)

    def get_queryset(self):
        assert connection.schema_name != "public"
        return self.model.objects.visible_to(self.context["request"].access, self.permission)
