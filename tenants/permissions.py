from config.permissions import declare

ORGANIZATION_VIEW = declare("tenants.organization.view", "See the organization's profile")
ORGANIZATION_UPDATE = declare(
    "tenants.organization.update", "Edit the organization's settings: name, time zone, currency and logo"
)
# Owners only (rbac/roles.py): deletion ends everyone's access, and the data is purged after the grace period.
ORGANIZATION_DELETE = declare(
    "tenants.organization.delete", "Delete the organization (suspended at once, purged after the grace period)"
)
