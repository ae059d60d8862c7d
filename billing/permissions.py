from config.permissions import declare

SUBSCRIPTION_VIEW = declare("billing.subscription.view", "See the plan, subscription, usage and invoices")
SUBSCRIPTION_MANAGE = declare("billing.subscription.manage", "Change the plan, open the billing portal")
