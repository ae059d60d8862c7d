from config.permissions import declare

REPORT_VIEW = declare("analytics.report.view", "See metrics, forecasts and insights")
