"""The CRM core API: leads, contacts, companies, activities, tags and custom field definitions,
one module per resource (``records`` holds what leads, contacts and companies share).

Views are glue: validate input, call a service or selector, serialize output. Authorization is declared
(``action_permissions``); the base viewset limits every queryset to the caller's scope for the action's
permission, so a record of another organization, an unknown id and a record outside ``own`` scope are the same
404. Bulk actions report such ids per item as ``not_found``.
"""

from .activities import ActivityViewSet
from .companies import CompanyViewSet
from .contacts import ContactViewSet
from .custom_fields import CustomFieldViewSet
from .leads import LeadViewSet
from .records import RecordViewSet
from .tags import TagViewSet

__all__ = [
    "ActivityViewSet",
    "CompanyViewSet",
    "ContactViewSet",
    "CustomFieldViewSet",
    "LeadViewSet",
    "RecordViewSet",
    "TagViewSet",
]
