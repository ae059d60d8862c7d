from django.contrib import admin

from .models import AuditEntry, Invitation, Membership, Role


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ["name", "key", "organization", "updated_at"]
    list_filter = [("organization", admin.EmptyFieldListFilter)]
    search_fields = ["name", "key", "organization__name"]
    readonly_fields = ["organization", "key", "grants", "created_at", "updated_at"]

    def has_add_permission(self, request):
        return False  # roles are created by organizations through the API; system roles by migration


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "is_active", "created_at"]
    list_filter = ["is_active", "role"]
    search_fields = ["user__email", "organization__name", "organization__slug"]
    list_select_related = ["user", "organization", "role"]
    readonly_fields = ["user", "organization", "role", "is_active", "created_at", "deactivated_at"]

    def has_add_permission(self, request):
        return False  # memberships change through the services (invitations, roles), so they stay audited


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "organization", "role", "status", "expires_at", "created_at"]
    list_filter = ["status"]
    search_fields = ["email", "organization__name"]
    list_select_related = ["organization", "role"]
    exclude = ["token_hash"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "organization", "actor_label", "action", "target_type", "target_id"]
    list_filter = ["action", "target_type"]
    search_fields = ["actor_label", "organization__name", "action"]
    list_select_related = ["organization"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
