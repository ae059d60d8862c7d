from rbac.catalogue import declare

REPORT_VIEW = declare("analytics.report.view", "See metrics, forecasts and insights")
