from django.contrib import admin, messages
from django.db import transaction

from rbac.access import bump

from . import services
from .models import Feature, Override, Plan, PlanFeature, PlanLimit, Subscription


class PlanFeatureInline(admin.TabularInline):
    model = PlanFeature
    extra = 0
    autocomplete_fields = ["feature"]


class PlanLimitInline(admin.TabularInline):
    model = PlanLimit
    extra = 0


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "monthly_price",
        "yearly_price",
        "currency",
        "trial_days",
        "is_public",
        "sort_order",
    ]
    list_editable = ["sort_order", "is_public"]
    search_fields = ["code", "name"]
    inlines = [PlanFeatureInline, PlanLimitInline]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.plan_changed(plan=form.instance, actor=request.user)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        bump()


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    list_display = ["code", "description"]
    search_fields = ["code", "description"]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["organization", "plan", "status", "interval", "trial_ends_at", "current_period_start"]
    list_filter = ["plan", "status", "interval"]
    search_fields = ["organization__name", "organization__slug"]
    list_select_related = ["organization", "plan"]
    readonly_fields = ["organization", "plan", "status", "trial_ends_at", "current_period_start", "canceled_at"]
    actions = ["change_to_free", "change_to_pro", "change_to_enterprise", "extend_trial_14_days", "suspend"]

    def has_add_permission(self, request):
        return False

    def _change_plan(self, request, queryset, code: str):
        for subscription in queryset.select_related("organization"):
            try:
                services.subscription_change_plan(
                    organization=subscription.organization, plan_code=code, actor=request.user
                )
            except Exception as exc:  # report per organization, keep going
                self.message_user(request, f"{subscription.organization}: {exc}", messages.ERROR)

    @admin.action(description="Change plan to Free")
    def change_to_free(self, request, queryset):
        self._change_plan(request, queryset, "free")

    @admin.action(description="Change plan to Pro")
    def change_to_pro(self, request, queryset):
        self._change_plan(request, queryset, "pro")

    @admin.action(description="Change plan to Enterprise")
    def change_to_enterprise(self, request, queryset):
        self._change_plan(request, queryset, "enterprise")

    @admin.action(description="Extend trial by 14 days")
    def extend_trial_14_days(self, request, queryset):
        for subscription in queryset.select_related("organization"):
            services.subscription_extend_trial(organization=subscription.organization, days=14, actor=request.user)

    @admin.action(description="Suspend the organization")
    def suspend(self, request, queryset):
        from tenants.services import organization_suspend

        with transaction.atomic():
            for subscription in queryset.select_related("organization"):
                organization_suspend(organization=subscription.organization)


@admin.register(Override)
class OverrideAdmin(admin.ModelAdmin):
    list_display = ["organization", "feature", "enabled", "limit", "limit_value", "expires_at", "reason"]
    list_filter = ["feature", "limit", "enabled"]
    search_fields = ["organization__name", "organization__slug", "reason"]
    autocomplete_fields = ["feature"]
    list_select_related = ["organization", "feature"]

    def save_model(self, request, obj, form, change):
        services.override_save(override=obj, actor=request.user)

    def delete_model(self, request, obj):
        services.override_delete(override=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for override in queryset:
            services.override_delete(override=override, actor=request.user)
