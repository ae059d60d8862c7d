"""The feature registry: every plan-gated capability. Plans switch these on and off (billing.models.Plan)."""

from enum import StrEnum


class Feature(StrEnum):
    CUSTOM_ROLES = "rbac.custom_roles"
    CUSTOM_FIELDS = "crm.custom_fields"
    IMPORT_EXPORT = "crm.import_export"
    CAMPAIGNS = "crm.campaigns"
    MULTIPLE_PIPELINES = "pipelines.multiple"
    FORECAST = "analytics.forecast"
    COPILOT = "assistant.copilot"
    COPILOT_OWN_KEY = "assistant.own_model_key"
    API_KEYS = "integrations.api_keys"
    WEBHOOKS = "integrations.webhooks"


FEATURE_DESCRIPTIONS: dict[Feature, str] = {
    Feature.CUSTOM_ROLES: "Define roles beyond the built-in ones",
    Feature.CUSTOM_FIELDS: "Add custom fields to records",
    Feature.IMPORT_EXPORT: "Import records from CSV/XLSX and export lists",
    Feature.CAMPAIGNS: "Run e-mail campaigns",
    Feature.MULTIPLE_PIPELINES: "Run more than one sales pipeline",
    Feature.FORECAST: "Revenue forecasts and insights",
    Feature.COPILOT: "The AI co-pilot",
    Feature.COPILOT_OWN_KEY: "The co-pilot with the organization's own model key",
    Feature.API_KEYS: "API keys for integrations",
    Feature.WEBHOOKS: "Signed webhooks",
}


class Limit(StrEnum):
    SEATS = "seats"
    CONTACTS = "contacts"
    DEALS = "deals"
    API_CALLS_PER_MINUTE = "api_calls_per_minute"
    API_CALLS_PER_DAY = "api_calls_per_day"
    COPILOT_MESSAGES_PER_MONTH = "copilot_messages_per_month"
    WEBHOOK_ENDPOINTS = "webhook_endpoints"
    CUSTOM_FIELDS = "custom_fields"
    CAMPAIGN_MESSAGES_PER_MONTH = "campaign_messages_per_month"
    CAMPAIGN_MESSAGES_PER_HOUR = "campaign_messages_per_hour"


LIMIT_DESCRIPTIONS: dict[Limit, str] = {
    Limit.SEATS: "Active members",
    Limit.CONTACTS: "Contacts stored",
    Limit.DEALS: "Deals stored",
    Limit.API_CALLS_PER_MINUTE: "API requests per minute, per user or key",
    Limit.API_CALLS_PER_DAY: "API requests per day, per user or key",
    Limit.COPILOT_MESSAGES_PER_MONTH: "Co-pilot messages per calendar month",
    Limit.WEBHOOK_ENDPOINTS: "Webhook endpoints",
    Limit.CUSTOM_FIELDS: "Custom field definitions",
    Limit.CAMPAIGN_MESSAGES_PER_MONTH: "Campaign messages sent per calendar month (UTC)",
    Limit.CAMPAIGN_MESSAGES_PER_HOUR: "Campaign messages sent per hour (sending slows down past it)",
}

# Consumption limits: they count what a calendar month used (billing.metering) and start over each month, so a
# downgrade is never blocked by them (it only stops more consumption this month).
CONSUMPTION_LIMITS: frozenset[Limit] = frozenset({Limit.COPILOT_MESSAGES_PER_MONTH, Limit.CAMPAIGN_MESSAGES_PER_MONTH})
