from config.permissions import declare

WEBHOOK_MANAGE = declare("integrations.webhook.manage", "Manage webhook endpoints and deliveries")
EVENT_VIEW = declare("integrations.event.view", "Read the organization's event log")
