"""The operators' console for plans, features, subscriptions and overrides.

Every change goes through ``billing.services``: it is audited and invalidates the authorization decisions, so it takes
effect for every tenant on the next request.
"""

from django.contrib import admin

from config.admin import ReadOnlyAdmin, apply_to_each

from . import services
from .models import Feature, Override, Plan, PlanFeature, PlanLimit, PlanMeter, ProviderEvent, Subscription, UsageAlert


class PlanFeatureInline(admin.TabularInline):
    model = PlanFeature
    extra = 0
    autocomplete_fields = ["feature"]


class PlanLimitInline(admin.TabularInline):
    model = PlanLimit
    extra = 0


class PlanMeterInline(admin.TabularInline):
    """Meters the plan prices at the payment provider: usage of them is reported there (billing.metering)."""

    model = PlanMeter
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
        "provider_monthly_price",
        "provider_yearly_price",
    ]
    list_editable = ["sort_order", "is_public"]
    search_fields = ["code", "name"]
    inlines = [PlanFeatureInline, PlanLimitInline, PlanMeterInline]

    def save_model(self, request, obj, form, change):
        # The inlines are saved after this: the database still holds the plan as it was.
        previous = Plan.objects.filter(pk=obj.pk).first() if change else None
        request._plan_before = services.plan_snapshot(previous) if previous else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.plan_changed(plan=form.instance, actor=request.user, before=getattr(request, "_plan_before", None))

    def delete_model(self, request, obj):
        before, pk = services.plan_snapshot(obj), obj.pk
        super().delete_model(request, obj)
        services.plan_deleted(before=before, plan_id=pk, actor=request.user)

    def delete_queryset(self, request, queryset):
        for plan in queryset:
            self.delete_model(request, plan)


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    """Feature rows mirror the registry in code (``billing.features.Feature``): operators edit descriptions."""

    list_display = ["code", "description"]
    search_fields = ["code", "description"]
    readonly_fields = ["code"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _change_plan_action(plan: Plan):
    def action(modeladmin, request, queryset):
        modeladmin.run_per_organization(
            request,
            queryset,
            lambda subscription: services.subscription_change_plan(
                organization=subscription.organization, plan_code=plan.code, actor=request.user
            ),
            done=f"moved to {plan.name}",
        )

    action.__name__ = f"change_plan_to_{plan.code}"
    return action


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    """Subscriptions change through the actions only, so each change is audited and applies on the next request."""

    list_display = [
        "organization",
        "plan",
        "status",
        "interval",
        "trial_ends_at",
        "current_period_start",
        "organization_status",
    ]
    list_filter = ["plan", "status", "interval"]
    search_fields = ["organization__name", "organization__slug", "provider_customer_id", "provider_subscription_id"]
    list_select_related = ["organization", "plan"]
    readonly_fields = [
        "organization",
        "plan",
        "status",
        "interval",
        "trial_ends_at",
        "current_period_start",
        "current_period_end",
        "canceled_at",
        "updated_at",
        "scheduled_plan",
        "scheduled_interval",
        "cancel_at_period_end",
        "past_due_since",
        "provider_customer_id",
        "provider_subscription_id",
        "provider_event_at",
    ]
    actions = ["extend_trial_14_days", "suspend", "reactivate"]

    @admin.display(description="organization status", ordering="organization__status")
    def organization_status(self, obj) -> str:
        return obj.organization.get_status_display()

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        for plan in Plan.objects.order_by("sort_order", "code"):
            action = _change_plan_action(plan)
            actions[action.__name__] = (action, action.__name__, f"Change plan to {plan.name}")
        return actions

    def run_per_organization(self, request, queryset, change, *, done: str) -> None:
        subscriptions = queryset.select_related("organization", "plan")
        apply_to_each(self, request, subscriptions, change, done=done, label=lambda s: s.organization)

    @admin.action(description="Extend trial by 14 days")
    def extend_trial_14_days(self, request, queryset):
        self.run_per_organization(
            request,
            queryset,
            lambda s: services.subscription_extend_trial(organization=s.organization, days=14, actor=request.user),
            done="got 14 more days of trial",
        )

    @admin.action(description="Suspend the organization")
    def suspend(self, request, queryset):
        self.run_per_organization(
            request,
            queryset,
            lambda s: services.organization_suspend_for_billing(organization=s.organization, actor=request.user),
            done="suspended",
        )

    @admin.action(description="Reactivate the organization")
    def reactivate(self, request, queryset):
        self.run_per_organization(
            request,
            queryset,
            lambda s: services.organization_reactivate_for_billing(organization=s.organization, actor=request.user),
            done="reactivated",
        )


@admin.register(Override)
class OverrideAdmin(admin.ModelAdmin):
    list_display = ["organization", "feature", "enabled", "limit", "limit_value", "expires_at", "reason"]
    list_filter = ["feature", "limit", "enabled"]
    search_fields = ["organization__name", "organization__slug", "reason"]
    autocomplete_fields = ["feature"]
    list_select_related = ["organization", "feature"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "organization":
            from tenants.choices import OrganizationStatus
            from tenants.models import Organization

            kwargs["queryset"] = Organization.objects.exclude(status=OrganizationStatus.STANDBY).order_by("name")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        services.override_save(override=obj, actor=request.user)

    def delete_model(self, request, obj):
        services.override_delete(override=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for override in queryset:
            services.override_delete(override=override, actor=request.user)


@admin.register(ProviderEvent)
class ProviderEventAdmin(ReadOnlyAdmin):
    """Every payment provider event processed, and what became of it (applied, stale, ignored)."""

    list_display = ["event_id", "type", "created", "organization", "outcome", "processed_at"]
    list_filter = ["type", "outcome"]
    search_fields = ["event_id", "organization__slug"]
    list_select_related = ["organization"]


@admin.register(UsageAlert)
class UsageAlertAdmin(ReadOnlyAdmin):
    list_display = ["organization", "limit", "threshold", "used", "value", "period_start", "created_at"]
    list_filter = ["limit", "threshold"]
    search_fields = ["organization__name", "organization__slug"]
    list_select_related = ["organization"]
