from config.permissions import declare

COPILOT_USE = declare("assistant.copilot.use", "Talk to the co-pilot")
MODEL_SETTINGS_MANAGE = declare(
    "assistant.model_settings.manage", "Set the organization's own model key for the co-pilot"
)
