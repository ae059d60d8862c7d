from django.db import transaction

from .models import Membership


@transaction.atomic
def membership_create(*, user, organization, role: str = Membership.Role.MEMBER) -> Membership:
    return Membership.objects.create(user=user, organization=organization, role=role)
