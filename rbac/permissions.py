from config.permissions import declare

MEMBER_VIEW = declare("rbac.member.view", "See the organization's members and their roles")
MEMBER_MANAGE = declare("rbac.member.manage", "Invite, change the role of, deactivate and remove members")
ROLE_VIEW = declare("rbac.role.view", "See roles and their permissions")
ROLE_MANAGE = declare("rbac.role.manage", "Create, edit and delete custom roles")
AUDIT_VIEW = declare("rbac.audit.view", "Read the audit trail")
OWNERSHIP_TRANSFER = declare(
    "rbac.ownership.transfer",
    "Hand the organization's ownership to another member; change the role of, deactivate or remove an owner",
)
