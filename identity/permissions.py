from config.permissions import declare

# The code names integrations, where API keys are used; the keys themselves are credentials, identity's.
APIKEY_MANAGE = declare("integrations.apikey.manage", "Create, rotate and revoke API keys")
