from django.db import models


class OrganizationStatus(models.TextChoices):
    STANDBY = "standby", "Standby (provisioned, not yet claimed)"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    DELETED = "deleted", "Deleted (awaiting purge)"
