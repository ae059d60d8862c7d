from config.permissions import declare

PIPELINE_VIEW = declare("pipelines.pipeline.view", "See pipelines and their stages")
PIPELINE_MANAGE = declare("pipelines.pipeline.manage", "Create and edit pipelines and stages")
DEAL_VIEW = declare("pipelines.deal.view", "See deals", scoped=True)
DEAL_CREATE = declare("pipelines.deal.create", "Create deals")
DEAL_UPDATE = declare("pipelines.deal.update", "Edit deals", scoped=True)
DEAL_DELETE = declare("pipelines.deal.delete", "Delete deals", scoped=True)
DEAL_MOVE_STAGE = declare("pipelines.deal.move_stage", "Move deals between stages", scoped=True)
DEAL_CLOSE = declare("pipelines.deal.close", "Mark deals won or lost, and reopen them", scoped=True)
DEAL_EXPORT = declare("pipelines.deal.export", "Export deals", scoped=True)
