from config.permissions import declare

SUBSCRIPTION_VIEW = declare("billing.subscription.view", "See the plan, subscription and usage")
SUBSCRIPTION_MANAGE = declare("billing.subscription.manage", "Change the plan")
