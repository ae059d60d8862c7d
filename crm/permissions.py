from config.permissions import declare

_RECORDS = {"company": "companies", "contact": "contacts", "lead": "leads", "activity": "activities"}
_DECLARED: dict[str, str] = {}

for _resource, _plural in _RECORDS.items():
    _DECLARED[f"{_resource}.view"] = declare(f"crm.{_resource}.view", f"See {_plural}", scoped=True)
    _DECLARED[f"{_resource}.create"] = declare(f"crm.{_resource}.create", f"Create {_plural}")
    _DECLARED[f"{_resource}.update"] = declare(f"crm.{_resource}.update", f"Edit {_plural}", scoped=True)
    _DECLARED[f"{_resource}.delete"] = declare(f"crm.{_resource}.delete", f"Delete {_plural}", scoped=True)
for _resource, _plural in list(_RECORDS.items())[:3]:
    _DECLARED[f"{_resource}.export"] = declare(f"crm.{_resource}.export", f"Export {_plural}", scoped=True)
    _DECLARED[f"{_resource}.import"] = declare(f"crm.{_resource}.import", f"Import {_plural} from files")

LEAD_CONVERT = declare("crm.lead.convert", "Qualify, disqualify and convert leads", scoped=True)
CONTACT_MERGE = declare("crm.contact.merge", "Merge duplicate contacts and companies", scoped=True)
TAG_MANAGE = declare("crm.tag.manage", "Create, rename and delete tags")
CUSTOM_FIELD_MANAGE = declare("crm.custom_field.manage", "Define custom fields")
CAMPAIGN_VIEW = declare("crm.campaign.view", "See campaigns and their results")
CAMPAIGN_MANAGE = declare("crm.campaign.manage", "Create, schedule and send campaigns")

COMPANY_VIEW = _DECLARED["company.view"]
COMPANY_CREATE = _DECLARED["company.create"]
COMPANY_UPDATE = _DECLARED["company.update"]
COMPANY_DELETE = _DECLARED["company.delete"]
CONTACT_VIEW = _DECLARED["contact.view"]
CONTACT_UPDATE = _DECLARED["contact.update"]
CONTACT_DELETE = _DECLARED["contact.delete"]
LEAD_VIEW = _DECLARED["lead.view"]
LEAD_UPDATE = _DECLARED["lead.update"]
LEAD_DELETE = _DECLARED["lead.delete"]
ACTIVITY_VIEW = _DECLARED["activity.view"]
ACTIVITY_UPDATE = _DECLARED["activity.update"]

#: The edit and delete permissions of the record types bulk changes and imports act on.
UPDATE = {"lead": LEAD_UPDATE, "contact": CONTACT_UPDATE, "company": COMPANY_UPDATE}
DELETE = {"lead": LEAD_DELETE, "contact": CONTACT_DELETE, "company": COMPANY_DELETE}
IMPORT = {name: _DECLARED[f"{name}.import"] for name in ("lead", "contact", "company")}
