from django.db import models


class SystemRole(models.TextChoices):
    """Roles present in every organization. Their grants live in code (rbac/roles.py)."""

    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MANAGER = "manager", "Manager"
    SALES_REP = "sales_rep", "Sales Rep"
    SUPPORT = "support", "Support"
    VIEWER = "viewer", "Viewer"


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"
