"""The operators' console for organizations and their domains.

Organizations are created, suspended, reactivated and deleted through ``tenants.services``, so a new one gets
its schema and a deleted one is suspended first and purged after the grace period. Standby schemas of the
provisioning pool are not shown.
"""

from django import forms
from django.contrib import admin

from config.admin import apply_to_each

from . import services
from .choices import OrganizationStatus
from .models import Domain, Organization


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0
    fields = ["domain", "is_primary"]


class OrganizationAddForm(forms.ModelForm):
    slug = forms.CharField(max_length=63, required=False, help_text="Leave empty to derive it from the name.")

    class Meta:
        model = Organization
        fields = ["name", "slug"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "status", "schema_name", "created_at", "deleted_at"]
    list_filter = ["status"]
    search_fields = ["name", "slug", "schema_name", "domains__domain"]
    # The settings (time zone, currency, logo) are the organization's own, edited through the API's validation.
    readonly_fields = [
        "slug", "schema_name", "status", "time_zone", "currency", "logo_url", "created_at", "activated_at", "deleted_at"
    ]  # fmt: skip
    fields = ["name", *readonly_fields]
    inlines = [DomainInline]
    actions = ["suspend", "reactivate", "delete_organizations"]

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(status=OrganizationStatus.STANDBY)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = OrganizationAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ["name", "slug"] if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        created = services.organization_create(name=form.cleaned_data["name"], slug=form.cleaned_data["slug"] or None)
        obj.pk, obj.schema_name, obj.slug = created.pk, created.schema_name, created.slug
        obj._state.adding = False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deletion suspends and purges later: see delete_organizations
        return actions

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Suspend (no request reaches it; data kept)")
    def suspend(self, request, queryset):
        apply_to_each(
            self, request, queryset, lambda o: services.organization_suspend(organization=o), done="suspended"
        )

    @admin.action(description="Reactivate")
    def reactivate(self, request, queryset):
        apply_to_each(
            self, request, queryset, lambda o: services.organization_reactivate(organization=o), done="reactivated"
        )

    @admin.action(description="Delete (suspend now, purge the schema after the grace period)")
    def delete_organizations(self, request, queryset):
        apply_to_each(
            self,
            request,
            queryset,
            lambda o: services.organization_delete(organization=o, actor=request.user),
            done="deleted",
        )


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "tenant", "is_primary"]
    search_fields = ["domain", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant"]
    autocomplete_fields = ["tenant"]
