"""Operators read roles, memberships, invitations and the audit trail here; they do not change them.

Memberships and roles change through the services (the API), which keep the last-owner rule, the audit
trail and the cache invalidation; an admin form or a bulk delete would bypass all three.
"""

from django.contrib import admin

from config.admin import ReadOnlyAdmin

from .models import AuditEntry, Invitation, Membership, Role


@admin.register(Role)
class RoleAdmin(ReadOnlyAdmin):
    list_display = ["name", "key", "organization", "updated_at"]
    list_filter = [("organization", admin.EmptyFieldListFilter)]
    search_fields = ["name", "key", "organization__name"]
    list_select_related = ["organization"]


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ["user", "organization", "role", "is_active", "created_at"]
    list_filter = ["is_active", "role"]
    search_fields = ["user__email", "organization__name", "organization__slug"]
    list_select_related = ["user", "organization", "role"]


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = ["email", "organization", "role", "status", "expires_at", "created_at"]
    list_filter = ["status"]
    search_fields = ["email", "organization__name"]
    list_select_related = ["organization", "role"]
    exclude = ["token_hash"]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "actor_label", "action", "target_type", "target_id"]
    list_filter = ["action", "target_type"]
    search_fields = ["actor_label", "organization__name", "action"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
