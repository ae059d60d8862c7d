from config.permissions import declare

COPILOT_USE = declare("assistant.copilot.use", "Talk to the co-pilot")
