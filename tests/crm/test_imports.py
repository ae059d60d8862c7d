"""Imports of contacts, companies and leads from CSV and XLSX, through the API and the background task."""

from __future__ import annotations

import gc

import pytest
from django.db import OperationalError

from billing.models import Override
from crm import imports
from crm.choices import CustomFieldType, ImportStatus
from crm.models import Company, Contact, CustomField, ImportJob, Lead, Tag
from integrations.models import OutboxEvent

from .fixtures.transfer import csv_bytes, csv_dicts, csv_rows, fixture_bytes, streamed, upload, xlsx_bytes

pytestmark = pytest.mark.django_db

HEADER = ["first_name", "last_name", "email", "job_title"]


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.IMPORT_WORK_DIR = str(tmp_path / "work")
    return tmp_path


@pytest.fixture
def run_import(as_owner_a, django_capture_on_commit_callbacks):
    """Upload as org A's owner and run the queued task; returns (response, job or None)."""

    def run(content: bytes, client=None, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            response = upload(client or as_owner_a, content, **kwargs)
        job = None
        if response.status_code == 202:
            job = ImportJob.objects.get(pk=response.json()["id"])
        return response, job

    return run


def _events(in_tenant, org, event_type: str) -> int:
    with in_tenant(org):
        return OutboxEvent.objects.filter(type=event_type).count()


def test_contacts_are_created_owned_by_the_importer_with_tags_custom_fields_and_events(
    run_import, org_a, owner_a, in_tenant, as_owner_a
):
    with in_tenant(org_a):
        CustomField.objects.create(
            record_type="contact", key="tier", label="Tier", type=CustomFieldType.CHOICE, choices=["gold", "silver"]
        )
    content = csv_bytes(
        [
            ["Given", "Family", "Mail", "Tags", "Tier", "Ignored"],
            ["Ada", "Lovelace", "ADA@Example.test", "math; pioneers", "gold", "x"],
            ["Grace", "Hopper", "grace@example.test", "", "", "y"],
        ]
    )
    mapping = {
        "Given": "first_name",
        "Family": "last_name",
        "Mail": "email",
        "Tags": "tags",
        "Tier": "custom_fields.tier",
        "Ignored": None,
    }
    response, job = run_import(content, mapping=mapping)

    assert response.status_code == 202, response.content
    assert response["Location"].endswith(f"/api/v1/imports/{job.pk}/")
    assert job.status == ImportStatus.COMPLETED
    assert (job.total_rows, job.processed_rows, job.created_count, job.error_count) == (2, 2, 2, 0)
    with in_tenant(org_a):
        ada = Contact.objects.get(email="ada@example.test")
        assert (ada.first_name, ada.owner_id, ada.source) == ("Ada", owner_a.pk, "import")
        assert ada.custom_fields == {"tier": "gold"}
        assert sorted(tag.name for tag in ada.tags.all()) == ["math", "pioneers"]
        assert Contact.objects.count() == 2
    assert _events(in_tenant, org_a, "contact.created") == 2

    progress = as_owner_a.get(f"/api/v1/imports/{job.pk}/").json()
    assert progress["status"] == "completed"
    assert (progress["processed_rows"], progress["total_rows"], progress["progress"]) == (2, 2, 100.0)
    assert progress["created_count"] == 2
    assert progress["errors_url"].endswith(f"/api/v1/imports/{job.pk}/errors/")


def test_malformed_rows_are_reported_and_the_good_rows_kept(run_import, org_a, in_tenant, as_owner_a):
    mapping = {
        "First name": "first_name",
        "Last name": "last_name",
        "E-mail": "email",
        "Job title": "job_title",
        "Tags": "tags",
    }
    response, job = run_import(fixture_bytes("contacts_malformed.csv"), mapping=mapping)

    assert response.status_code == 202
    assert job.status == ImportStatus.COMPLETED
    # the blank row is ignored; two rows fail, two are imported
    assert (job.total_rows, job.processed_rows, job.created_count, job.error_count) == (4, 4, 2, 2)
    with in_tenant(org_a):
        assert sorted(Contact.objects.values_list("email", flat=True)) == ["ada@example.test", "alan@example.test"]
        assert Contact.objects.get(email="alan@example.test").job_title == "Code breaker, lead"

    answer = as_owner_a.get(f"/api/v1/imports/{job.pk}/errors/")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/csv")
    lines = csv_rows(streamed(answer))
    assert lines[0] == ["row", "field", "code", "message", "First name", "Last name", "E-mail", "Job title", "Tags"]
    assert [line[:3] for line in lines[1:]] == [["3", "", "malformed_row"], ["4", "email", "invalid_email"]]
    assert lines[1][4:] == ["Broken", "Row", "broken@example.test"]
    assert lines[2][4:7] == ["Grace", "Hopper", "not-an-email"]


def test_each_invalid_cell_is_one_line_of_the_errors_file(run_import, org_a, owner_a, in_tenant, as_owner_a):
    content = csv_bytes(
        [
            ["name", "email", "status", "score", "estimated_value", "owner", "priority"],
            ["Good", "good@example.test", "contacted", "50", "1250.50", owner_a.email.upper(), "High"],
            ["Bad", "bad@", "qualified", "101", "12.345", "stranger@example.test", "urgent"],
            ["", "nameless@example.test", "", "", "", "", ""],
        ]
    )
    response, job = run_import(content, record_type="lead")

    assert response.status_code == 202, response.content
    assert (job.created_count, job.error_count) == (1, 2)
    with in_tenant(org_a):
        lead = Lead.objects.get()
        assert (lead.status, lead.score, str(lead.estimated_value), lead.priority) == (
            "contacted",
            50,
            "1250.50",
            "high",
        )
    lines = csv_dicts(streamed(as_owner_a.get(f"/api/v1/imports/{job.pk}/errors/")))
    assert [(line["row"], line["field"], line["code"]) for line in lines] == [
        ("3", "email", "invalid_email"),
        ("3", "status", "invalid_choice"),
        ("3", "score", "invalid_number"),
        ("3", "estimated_value", "invalid_number"),
        ("3", "owner", "unknown_owner"),
        ("3", "priority", "invalid_choice"),
        ("4", "name", "required"),
    ]


def test_a_file_in_another_encoding_is_refused(run_import, org_a, in_tenant):
    response, _job = run_import(fixture_bytes("contacts_cp1252.csv"))

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_encoding"
    with in_tenant(org_a):
        assert not ImportJob.objects.exists()


def test_utf8_with_bom_and_semicolons_is_read(run_import, org_a, in_tenant):
    response, job = run_import(
        fixture_bytes("companies_bom_semicolon.csv"), name="companies.csv", record_type="company"
    )

    assert response.status_code == 202, response.content
    assert response.json()["mapping"] == {"name": "name", "domain": "domain", "country": "country"}
    assert (job.created_count, job.error_count) == (2, 0)
    with in_tenant(org_a):
        assert dict(Company.objects.values_list("name", "domain")) == {
            "Acme GmbH": "acme.example",
            "Globex": "globex.example",
        }
        assert Company.objects.get(name="Acme GmbH").country == "DE"


@pytest.mark.parametrize(
    ("content", "detail"),
    [(b"", "The file is empty."), (b"first_name,email\r\n", "The file has a header but no rows."), (b"\n\n,,\n", None)],
    ids=["no bytes", "header only", "blank lines"],
)
def test_an_empty_file_is_refused(run_import, content, detail):
    response, _job = run_import(content)

    assert response.status_code == 400
    assert response.json()["code"] == "empty_file"
    if detail:
        assert response.json()["detail"] == detail


def test_an_oversized_file_is_413(run_import, settings, org_a, in_tenant):
    settings.IMPORT_MAX_BYTES = 200
    response, _job = run_import(
        csv_bytes([HEADER] + [["Ada", "Lovelace", f"ada{i}@example.test", ""] for i in range(20)])
    )

    assert response.status_code == 413
    body = response.json()
    assert (body["code"], body["max_bytes"]) == ("file_too_large", 200)
    with in_tenant(org_a):
        assert not ImportJob.objects.exists()


def test_too_many_rows_is_400(run_import, settings):
    settings.IMPORT_MAX_ROWS = 2
    response, _job = run_import(csv_bytes([HEADER] + [["A", "B", f"a{i}@example.test", ""] for i in range(3)]))

    assert response.status_code == 400
    assert response.json()["code"] == "too_many_rows"


def test_unknown_mapping_targets_and_columns_are_400(run_import):
    content = csv_bytes([["Name", "Mail"], ["Ada", "ada@example.test"]])
    response, _job = run_import(content, mapping={"Name": "first_name", "Mail": "e_mail", "Fax": "phone"})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_mapping"
    assert {(error["field"], error["code"]) for error in body["errors"]} == {
        ("mapping.Mail", "unknown_field"),
        ("mapping.Fax", "unknown_column"),
    }


def test_a_mapping_without_a_required_field_is_400(run_import):
    response, _job = run_import(
        csv_bytes([["Company"], ["Acme"]]), record_type="lead", mapping={"Company": "company_name"}
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "missing_required_field"


def test_duplicates_within_the_file_and_against_existing_records_are_skipped(run_import, org_a, in_tenant):
    with in_tenant(org_a):
        Contact.objects.create(first_name="Old", email="known@example.test", job_title="Keeps")
    content = csv_bytes(
        [
            HEADER,
            ["New", "One", "new@example.test", "First"],
            ["Known", "Again", "KNOWN@example.test", "Changed"],
            ["New", "Twice", "new@example.test", "Second"],
        ]
    )
    _response, job = run_import(content)

    assert (job.created_count, job.skipped_count, job.updated_count, job.error_count) == (1, 2, 0, 0)
    with in_tenant(org_a):
        assert Contact.objects.filter(email="new@example.test").count() == 1
        assert Contact.objects.get(email="new@example.test").job_title == "First"
        assert Contact.objects.get(email="known@example.test").job_title == "Keeps"


def test_update_policy_changes_once_and_a_second_run_changes_nothing(run_import, org_a, in_tenant, settings):
    # batches of two: a duplicate within a batch merges into the new record, one in a later batch updates it
    settings.IMPORT_BATCH_SIZE = 2
    with in_tenant(org_a):
        known = Contact.objects.create(first_name="Old", email="known@example.test", job_title="Keeps", phone="123")
        known.tags.add(Tag.objects.create(name="existing"))
    content = csv_bytes(
        [
            [*HEADER, "phone", "tags"],
            ["Known", "", "known@example.test", "Promoted", "", "vip"],
            ["Fresh", "Face", "fresh@example.test", "Intern", "", ""],
            ["Other", "Person", "other@example.test", "", "", ""],
            ["Other", "Person", "other@example.test", "", "", "new"],
            ["Fresh", "Face", "FRESH@example.test", "Intern", "555", ""],
        ]
    )
    _response, first = run_import(content, policy="update")

    assert (first.created_count, first.updated_count, first.skipped_count, first.error_count) == (2, 3, 0, 0)
    with in_tenant(org_a):
        known.refresh_from_db()
        assert (known.first_name, known.last_name, known.job_title, known.phone) == ("Known", "", "Promoted", "123")
        assert sorted(tag.name for tag in known.tags.all()) == ["existing", "vip"]
        assert Contact.objects.get(email="fresh@example.test").phone == "555"
        assert [tag.name for tag in Contact.objects.get(email="other@example.test").tags.all()] == ["new"]
        update = OutboxEvent.objects.get(type="contact.updated", subject_id=str(known.pk))
        assert update.payload["changes"]["job_title"] == ["Keeps", "Promoted"]
        assert update.payload["changes"]["tags"] == ["existing", "vip"]
        assert OutboxEvent.objects.filter(type="contact.updated").count() == 2  # known, and fresh in a later batch
        counts = (Contact.objects.count(), OutboxEvent.objects.count())

    _response, second = run_import(content, policy="update")

    assert (second.created_count, second.updated_count, second.skipped_count, second.error_count) == (0, 0, 5, 0)
    with in_tenant(org_a):
        assert (Contact.objects.count(), OutboxEvent.objects.count()) == counts


def test_create_policy_keeps_contact_e_mails_unique_but_creates_leads(run_import, org_a, in_tenant):
    content = csv_bytes([["name", "email"], ["A", "same@example.test"], ["B", "same@example.test"]])
    _response, leads = run_import(content, record_type="lead", policy="create")
    _response, contacts = run_import(
        csv_bytes([["first_name", "email"], ["A", "same@example.test"], ["B", "same@example.test"]]), policy="create"
    )

    assert (leads.created_count, leads.error_count) == (2, 0)
    assert (contacts.created_count, contacts.error_count) == (1, 1)
    with in_tenant(org_a):
        assert Lead.objects.filter(email="same@example.test").count() == 2
        assert Contact.objects.filter(email="same@example.test").count() == 1


def test_create_policy_keeps_company_domains_unique(run_import, org_a, in_tenant, as_owner_a):
    with in_tenant(org_a):
        Company.objects.create(name="Acme", domain="acme.example")
    content = csv_bytes(
        [
            ["name", "domain"],
            ["Acme again", "www.ACME.example"],
            ["Beta", "beta.example"],
            ["Beta twin", "https://beta.example/"],
            ["No site", ""],
            ["No site either", ""],
        ]
    )
    _response, job = run_import(content, record_type="company", policy="create")

    assert (job.created_count, job.error_count) == (3, 2)
    with in_tenant(org_a):
        assert sorted(Company.objects.exclude(domain="").values_list("domain", flat=True)) == [
            "acme.example",
            "beta.example",
        ]
    lines = csv_dicts(streamed(as_owner_a.get(f"/api/v1/imports/{job.pk}/errors/")))
    assert [(line["row"], line["code"]) for line in lines] == [("2", "duplicate_domain"), ("4", "duplicate_domain")]


def test_companies_dedupe_by_normalized_domain(run_import, org_a, in_tenant):
    with in_tenant(org_a):
        Company.objects.create(name="Acme", domain="acme.example", city="Berlin")
    content = csv_bytes([["name", "domain", "city"], ["Acme Inc", "https://www.ACME.example/contact", "Paris"]])
    _response, job = run_import(content, record_type="company", policy="update")

    assert (job.created_count, job.updated_count) == (0, 1)
    with in_tenant(org_a):
        assert list(Company.objects.values_list("name", "city")) == [("Acme Inc", "Paris")]


def test_the_contacts_limit_stops_creation_and_reports_the_rest(run_import, org_a, in_tenant, as_owner_a):
    with in_tenant(org_a):
        Contact.objects.create(first_name="Existing", email="existing@example.test")
    Override.objects.create(organization=org_a, limit="contacts", limit_value=3)
    content = csv_bytes([HEADER] + [["C", str(i), f"c{i}@example.test", ""] for i in range(4)])
    _response, job = run_import(content)

    assert (job.created_count, job.error_count) == (2, 2)
    with in_tenant(org_a):
        assert Contact.objects.count() == 3
    lines = csv_dicts(streamed(as_owner_a.get(f"/api/v1/imports/{job.pk}/errors/")))
    assert [(line["row"], line["code"]) for line in lines] == [("4", "plan_limit_reached"), ("5", "plan_limit_reached")]


def test_an_owner_column_gives_records_to_members(run_import, org_a, in_tenant, member):
    rep, _client = member(org_a, "sales_rep")
    content = csv_bytes([["name", "owner"], ["Theirs", rep.email], ["Mine", ""]])
    _response, job = run_import(content, record_type="lead")

    assert job.created_count == 2
    with in_tenant(org_a):
        assert Lead.objects.get(name="Theirs").owner_id == rep.pk


def test_xlsx_is_imported_with_typed_cells(run_import, org_a, in_tenant):
    content = xlsx_bytes(
        [
            ["first_name", "email", "phone", "do_not_contact", None],
            ["Ada", "ada@example.test", 4930123456, True, None],
            [None, None, None, None, None],
            ["Grace", "grace@example.test", "+1 555 0100", "no", None],
        ]
    )
    response, job = run_import(content, name="people.xlsx")

    assert response.status_code == 202, response.content
    assert (job.file_format, job.total_rows, job.created_count, job.error_count) == ("xlsx", 2, 2, 0)
    with in_tenant(org_a):
        ada = Contact.objects.get(email="ada@example.test")
        assert (ada.phone, ada.do_not_contact) == ("4930123456", True)
        assert Contact.objects.get(email="grace@example.test").phone == "+1 555 0100"


def test_a_member_without_the_import_permission_gets_403(member, org_a, in_tenant):
    _rep, client = member(org_a, "sales_rep")
    response = upload(client, csv_bytes([HEADER, ["A", "B", "a@example.test", ""]]))

    assert response.status_code == 403
    assert (response.json()["code"], response.json()["permission"]) == ("permission_denied", "crm.contact.import")
    with in_tenant(org_a):
        assert not ImportJob.objects.exists()


def test_another_organizations_import_job_is_not_found(
    run_import, org_a, org_b, owner_b, django_capture_on_commit_callbacks
):
    from ..conftest import client_for

    client_b = client_for(owner_b, org_b)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client_b, csv_bytes([HEADER, ["A", "B", "a@example.test", ""]]))
    job_b = response.json()["id"]
    _response, job_a = run_import(csv_bytes([HEADER, ["A", "B", "a@example.test", ""]]))
    client_a = client_for(job_a.created_by, org_a)

    for path in (f"/api/v1/imports/{job_b}/", f"/api/v1/imports/{job_b}/errors/"):
        answer = client_a.get(path)
        assert answer.status_code == 404
        assert answer.json()["code"] == "not_found"
    assert client_a.get("/api/v1/imports/not-a-uuid/").status_code == 404
    listed = client_a.get("/api/v1/imports/").json()["results"]
    assert [row["id"] for row in listed] == [str(job_a.pk)]
    creator = job_a.created_by
    assert listed[0]["created_by"] == {"id": creator.pk, "email": creator.email, "name": creator.full_name}
    assert client_b.get(f"/api/v1/imports/{job_b}/").status_code == 200


def test_a_manager_sees_every_import_and_a_custom_importer_only_their_own(run_import, org_a, member):
    from rbac.models import Role
    from rbac.services import membership_create

    from ..factories import make_user

    _response, job = run_import(csv_bytes([HEADER, ["A", "B", "a@example.test", ""]]))
    _manager, manager_client = member(org_a, "manager")
    importer = make_user()
    role = Role.objects.create(
        organization=org_a, key="importer", name="Importer", grants={"crm.contact.import": "all"}
    )
    membership_create(user=importer, organization=org_a, role=role)
    from ..conftest import client_for

    assert manager_client.get(f"/api/v1/imports/{job.pk}/").status_code == 200
    assert client_for(importer, org_a).get(f"/api/v1/imports/{job.pk}/").status_code == 404


def test_a_run_resumes_after_its_last_committed_batch_and_a_second_run_changes_nothing(
    as_owner_a, org_a, in_tenant, settings, monkeypatch
):
    settings.IMPORT_BATCH_SIZE = 2
    content = csv_bytes([HEADER] + [["P", str(i), f"p{i}@example.test" if i != 2 else "bad", ""] for i in range(5)])
    job_id = upload(as_owner_a, content).json()["id"]  # not committed: the task did not run
    real_write, calls = imports.batches.write, []

    def lose_the_connection_in_batch_two(setup, work, **kwargs):
        calls.append([row.number for row in work.rows])
        if len(calls) == 2:
            raise OperationalError("connection lost")
        return real_write(setup, work, **kwargs)

    monkeypatch.setattr(imports.batches, "write", lose_the_connection_in_batch_two)
    with in_tenant(org_a):
        with pytest.raises(OperationalError):
            imports.import_run(job_id=job_id)
        job = ImportJob.objects.get(pk=job_id)
        assert (job.status, job.processed_rows, job.created_count) == (ImportStatus.RUNNING, 2, 2)

        job = imports.import_run(job_id=job_id)  # the retry

        assert calls == [[2, 3], [5], [5], [6]]  # row 4 is invalid: it never reaches the batch
        assert (job.status, job.processed_rows, job.created_count, job.error_count) == ("completed", 5, 4, 1)
        assert Contact.objects.count() == 4
        assert OutboxEvent.objects.filter(type="contact.created").count() == 4
        lines = csv_dicts(b"".join(imports.errors_csv_lines(job)))
        assert [(line["row"], line["code"]) for line in lines] == [("4", "invalid_email")]

        again = imports.import_run(job_id=job_id)

        assert (again.status, again.created_count, len(calls)) == ("completed", 4, 4)
        assert Contact.objects.count() == 4


def test_a_stored_file_unreadable_midway_fails_the_job_after_the_batches_before_it(
    as_owner_a, org_a, in_tenant, settings
):
    settings.IMPORT_BATCH_SIZE = 100
    content = csv_bytes([HEADER] + [["P", str(i), f"p{i}@example.test", ""] for i in range(1000)])
    job_id = upload(as_owner_a, content).json()["id"]  # checked when uploaded; not run (no commit)
    with in_tenant(org_a):
        job = ImportJob.objects.get(pk=job_id)
        lines = content.split(b"\n")
        lines[800] = b"P,\xff\xfe,broken@example.test,"  # row 801 no longer decodes
        with open(job.file.path, "wb") as stored:
            stored.write(b"\n".join(lines))

        job = imports.import_run(job_id=job_id)

        assert (job.status, job.failure_reason) == (ImportStatus.FAILED, "The stored file cannot be read any more.")
        # The file is decoded a buffer ahead of the rows: the batches before the one the buffer falls in commit.
        assert 0 < job.processed_rows < 800
        assert job.processed_rows % 100 == 0
        assert job.created_count == Contact.objects.count() == job.processed_rows
        assert OutboxEvent.objects.filter(type="contact.created").count() == job.processed_rows


def test_the_next_batch_is_read_while_the_events_of_one_are_written(
    as_owner_a, org_a, in_tenant, settings, monkeypatch
):
    settings.IMPORT_BATCH_SIZE = 100
    content = csv_bytes([HEADER] + [["P", str(i), f"p{i}@example.test", ""] for i in range(300)])
    job_id = upload(as_owner_a, content).json()["id"]
    real_write, real_clean, during = imports.batches.write, imports.batches.clean, []
    applying = [False]

    def write(*args, **kwargs):
        applying[0] = True
        try:
            return real_write(*args, **kwargs)
        finally:
            applying[0] = False

    def clean(setup, number, cells):
        if applying[0]:
            during.append(number)
        return real_clean(setup, number, cells)

    monkeypatch.setattr(imports.batches, "write", write)
    monkeypatch.setattr(imports.batches, "clean", clean)
    with in_tenant(org_a):
        job = imports.import_run(job_id=job_id)

        assert (job.status, job.created_count) == (ImportStatus.COMPLETED, 300)
        # Rows 102-301 are the second and third batches: read in steps of 32 while the batch before wrote its
        # 100 events (three steps each), the rest of each batch after.
        assert during == [*range(102, 198), *range(202, 298)]
        assert Contact.objects.count() == 300


def test_the_batches_run_with_fewer_collections_and_the_thresholds_are_put_back_after_a_failed_run(
    as_owner_a, org_a, in_tenant, settings, monkeypatch
):
    settings.IMPORT_BATCH_SIZE = 100
    content = csv_bytes([HEADER] + [["P", str(i), f"p{i}@example.test", ""] for i in range(300)])
    job_id = upload(as_owner_a, content).json()["id"]
    real_write, seen = imports.batches.write, []

    def write(*args, **kwargs):
        seen.append(gc.get_threshold()[0])
        if len(seen) == 3:
            raise RuntimeError("a bug in the third batch")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(imports.batches, "write", write)
    before = gc.get_threshold()
    with in_tenant(org_a), pytest.raises(RuntimeError):
        imports.import_run(job_id=job_id)

    assert seen == [imports.jobs.COLLECT_EVERY_BATCHES * 100] * 3
    assert gc.get_threshold() == before


def test_the_task_retries_transient_errors_and_fails_the_job_on_others(as_owner_a, org_a, in_tenant, monkeypatch):
    from celery.exceptions import Retry

    from crm.tasks import import_run_task

    job_id = upload(as_owner_a, csv_bytes([HEADER, ["A", "B", "a@example.test", ""]])).json()["id"]
    with in_tenant(org_a):
        monkeypatch.setattr(imports, "import_run", lambda job_id: (_ for _ in ()).throw(OperationalError("gone")))
        with pytest.raises(Retry):
            import_run_task.apply(args=(job_id,), throw=True)
        assert ImportJob.objects.get(pk=job_id).status == ImportStatus.PENDING

        monkeypatch.setattr(imports, "import_run", lambda job_id: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            import_run_task.apply(args=(job_id,), throw=True)
        job = ImportJob.objects.get(pk=job_id)
        assert job.status == ImportStatus.FAILED
        assert job.failure_reason


def test_a_contact_created_between_the_lookup_and_the_insert_makes_the_task_retry(
    as_owner_a, org_a, in_tenant, monkeypatch
):
    """Another request takes an e-mail address after the batch looked it up: the batch's ``COPY`` fails on the
    unique index as Django's ``IntegrityError``, which the task retries (the retry finds the contact and skips the
    row), instead of failing the job."""
    from celery.exceptions import Retry

    from crm.tasks import import_run_task

    job_id = upload(as_owner_a, csv_bytes([HEADER, ["Ada", "L", "ada@example.test", ""]])).json()["id"]
    real_matches = imports.batches._matches

    def taken_meanwhile(setup, keys):
        found = real_matches(setup, keys)
        Contact.objects.create(first_name="Other", email="ada@example.test")
        return found

    with in_tenant(org_a):
        monkeypatch.setattr(imports.batches, "_matches", taken_meanwhile)
        with pytest.raises(Retry):
            import_run_task.apply(args=(job_id,), throw=True)
        job = ImportJob.objects.get(pk=job_id)
        assert (job.status, job.processed_rows) == (ImportStatus.RUNNING, 0)
        assert not Contact.objects.exists()  # the batch's transaction rolled back

        monkeypatch.setattr(imports.batches, "_matches", real_matches)
        Contact.objects.create(first_name="Other", email="ada@example.test")
        import_run_task.apply(args=(job_id,), throw=True)

        job = ImportJob.objects.get(pk=job_id)
        assert (job.status, job.created_count, job.skipped_count) == (ImportStatus.COMPLETED, 0, 1)


def test_the_errors_file_waits_for_the_end_of_the_import(as_owner_a, org_a, in_tenant):
    response = upload(as_owner_a, csv_bytes([HEADER, ["A", "B", "a@example.test", ""]]))  # no commit: not run

    assert response.json()["status"] == "pending"
    assert response.json()["errors_url"] is None
    answer = as_owner_a.get(f"/api/v1/imports/{response.json()['id']}/errors/")
    assert answer.status_code == 409
    assert answer.json()["code"] == "import_not_finished"


def test_a_created_event_carries_the_records_snapshot_and_the_uuids_are_version_4(run_import, org_a, in_tenant):
    import uuid

    from integrations import outbox

    content = csv_bytes([[*HEADER, "tags"], ["Ada", "Lovelace", "ada@example.test", "Engineer", "math"]])
    _response, job = run_import(content)

    assert job.created_count == 1
    with in_tenant(org_a):
        ada = Contact.objects.get(email="ada@example.test")
        event = OutboxEvent.objects.get(type="contact.created")
        assert event.subject_id == str(ada.pk)
        assert event.payload == outbox.snapshot(ada)  # the timestamps too: the payload is built, not re-read
        assert event.occurred_at == ada.created_at == ada.updated_at
        assert uuid.UUID(str(event.pk)).version == 4


@pytest.mark.parametrize(
    "value",
    [
        "a@b.co",
        "a@localhost",
        "a@[127.0.0.1]",
        "a@[1.2.3]",
        '"quoted user"@example.com',
        "a..b@example.com",
        "a@example",
        "a@-example.com",
        "a@exa_mple.com",
        "a@例子.测试",
        "a@b@c.com",
        "a@example.com.",
        "a+tag@sub.example.co.uk",
        "a b@example.com",
        "",
    ],
)
def test_e_mail_cells_are_checked_as_the_api_checks_them(value):
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    try:
        validate_email(value)
        expected = True
    except ValidationError:
        expected = False
    assert imports.fields.is_valid_email(value) is expected


def test_an_importer_who_may_not_manage_tags_attaches_existing_ones_only(run_import, org_a, in_tenant):
    """Rows naming a tag that does not exist fail with ``unknown_tag`` (like ``unknown_company``) unless the
    importer may manage tags; the other rows are imported with the existing tags."""
    from rbac.models import Role
    from rbac.services import membership_create

    from ..conftest import client_for
    from ..factories import make_user

    with in_tenant(org_a):
        Tag.objects.create(name="Known")
    importer = make_user()
    grants = {"crm.contact.import": "all", "crm.contact.create": "all", "crm.contact.view": "own"}
    role = Role.objects.create(organization=org_a, key="tagless-importer", name="Tagless importer", grants=grants)
    membership_create(user=importer, organization=org_a, role=role)
    client = client_for(importer, org_a)
    content = csv_bytes(
        [
            [*HEADER, "tags"],
            ["Ada", "Lovelace", "ada@example.test", "", "known"],
            ["Alan", "Turing", "alan@example.test", "", "known; invented"],
        ]
    )
    _response, job = run_import(content, client=client)

    assert (job.created_count, job.error_count) == (1, 1)
    with in_tenant(org_a):
        assert list(Tag.objects.values_list("name", flat=True)) == ["Known"]
        assert [tag.name for tag in Contact.objects.get(email="ada@example.test").tags.all()] == ["Known"]
        assert not Contact.objects.filter(email="alan@example.test").exists()
    lines = csv_dicts(streamed(client.get(f"/api/v1/imports/{job.pk}/errors/")))
    assert [(line["row"], line["field"], line["code"]) for line in lines] == [("3", "tags", "unknown_tag")]
    assert "'invented'" in lines[0]["message"]


def test_the_dedupe_lookup_probes_the_e_mail_index_whatever_the_statistics_and_the_number_of_keys(org_a, in_tenant):
    """A batch looks its keys up in one query, by the key's index, as it would in a table of a million contacts:
    an import fills the table faster than autovacuum analyses it, and with the statistics of a small table the
    lookup would read the whole table for every batch. Above 100 keys PostgreSQL also needs to be told that no key
    is blank to reach the partial index on e-mail. This table is small and never analysed: the plan the lookup
    gets with such statistics is the one a growing import's gets."""
    from types import SimpleNamespace

    from django.db import connection, transaction

    keys = {f"person{i}@example.test" for i in range(150)}
    setup = SimpleNamespace(model=Contact, key_field="email", policy="skip")

    def scans():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT seq_scan, idx_scan, current_setting('enable_seqscan') FROM pg_stat_xact_user_tables "
                "WHERE relid = 'crm_contact'::regclass"
            )
            return cursor.fetchone()

    with in_tenant(org_a), transaction.atomic():
        Contact.objects.bulk_create([Contact(first_name="Known", email=key) for key in sorted(keys)[:3]])
        Contact.objects.bulk_create([Contact(first_name="Blank") for _ in range(3)])
        seq_before, idx_before, _setting = scans()

        found = imports.batches._matches(setup, keys)

        seq_after, idx_after, setting = scans()
    assert sorted(found) == sorted(keys)[:3]
    assert seq_after == seq_before  # no sequential scan of the contacts
    assert idx_after > idx_before
    assert setting == "on"  # put back for the rest of the batch


def test_the_oldest_lead_wins_where_a_dedupe_key_repeats(org_a, in_tenant):
    from types import SimpleNamespace

    setup = SimpleNamespace(model=Lead, key_field="email", policy="update")
    with in_tenant(org_a):
        oldest, _newer = Lead.objects.bulk_create(
            [Lead(name="First", email="same@example.test"), Lead(name="Second", email="same@example.test")]
        )

        assert imports.batches._matches(setup, {"same@example.test"})["same@example.test"].pk == oldest.pk


def test_the_company_lookup_probes_the_name_index_whatever_the_statistics(org_a, owner_a, in_tenant):
    """As the dedupe lookup: contacts naming companies look them up by the name's index, even where the table's
    statistics are those of a table small enough to read whole (an import may be filling it)."""
    from types import SimpleNamespace

    from django.db import connection

    from rbac.access import access_for

    def sequential_scans():
        with connection.cursor() as cursor:
            cursor.execute("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'crm_company'::regclass")
            return cursor.fetchone()[0]

    with in_tenant(org_a):
        firms = Company.objects.bulk_create([Company(name=f"Firm {i}") for i in range(3)])
        setup = SimpleNamespace(access=access_for(user=owner_a, organization=org_a), actor_id=owner_a.pk)
        rows = [SimpleNamespace(company=f"FIRM {i}") for i in range(150)]
        before = sequential_scans()

        found = imports.batches._companies(setup, rows, events := [], create=True)

        assert sequential_scans() == before
        assert {name: found[name] for name in ("firm 0", "firm 1", "firm 2")} == {
            f"firm {i}": firm.pk for i, firm in enumerate(firms)
        }
        assert len(found) == 150
        assert len(events) == 147  # the others are created


def test_the_next_batch_is_decided_while_the_batch_before_commits(org_a, owner_a, settings, monkeypatch):
    """On a connection that commits (outside the test's transaction): the first batch is planned and decided in its
    own transaction; each later one is planned at the end of the batch before and decided while its COMMIT is on
    the way (libpq reports a command in progress)."""
    from django.core.files.base import ContentFile
    from django.db import connection
    from django_tenants.utils import tenant_context
    from psycopg.pq import TransactionStatus

    from crm import tasks
    from integrations import relay
    from rbac.access import access_for

    from ..conftest import committed

    settings.IMPORT_BATCH_SIZE = 2
    monkeypatch.setattr(tasks.import_run_task, "apply_async", lambda *args, **kwargs: None)
    monkeypatch.setattr(relay, "request_relay", lambda **kwargs: None)
    real_decide, decided = imports.batches.decide, []

    def decide(setup, work):
        decided.append(([row.number for row in work.rows], connection.connection.pgconn.transaction_status))
        return real_decide(setup, work)

    monkeypatch.setattr(imports.batches, "decide", decide)
    content = csv_bytes([HEADER] + [["P", str(i), f"meanwhile{i}@example.test", ""] for i in range(5)])

    def run():
        with tenant_context(org_a):
            access = access_for(user=owner_a, organization=org_a)
            upload = ContentFile(content, name="contacts.csv")
            job = imports.import_job_create(actor=access, upload=upload, record_type="contact")
            try:
                job = imports.import_run(job_id=job.pk)
                contacts = Contact.objects.filter(email__startswith="meanwhile")
                ids = [str(pk) for pk in contacts.values_list("pk", flat=True)]
                events = OutboxEvent.objects.filter(type="contact.created", subject_id__in=ids)
                return job.status, job.created_count, len(ids), events.count()
            finally:
                OutboxEvent.objects.filter(subject_type="contact", subject_id__in=ids).delete()
                Contact.objects.filter(email__startswith="meanwhile").delete()
                job.file.delete(save=False)
                ImportJob.objects.filter(pk=job.pk).delete()

    assert committed(run) == (ImportStatus.COMPLETED, 5, 5, 5)
    assert decided == [
        ([2, 3], TransactionStatus.INTRANS),
        ([4, 5], TransactionStatus.ACTIVE),
        ([6], TransactionStatus.ACTIVE),
    ]


def test_batches_that_create_companies_or_update_are_planned_in_their_own_transaction(
    run_import, org_a, in_tenant, settings, monkeypatch
):
    """A company created for a later batch belongs to that batch's transaction, with its event; records to update
    are locked in the transaction that updates them. Such batches are not planned early."""
    settings.IMPORT_BATCH_SIZE = 1
    real_plan, planned = imports.batches.plan, []

    def plan(setup, rows, outcome, *, early=False):
        work = real_plan(setup, rows, outcome, early=early)
        planned.append(([row.number for row in rows], early, work is not None))
        return work

    monkeypatch.setattr(imports.batches, "plan", plan)
    header = ["first_name", "email", "company"]
    content = csv_bytes([header, ["A", "a@example.test", "Acme"], ["B", "b@example.test", "Acme"], ["C", "", "Beta"]])
    _response, job = run_import(content)

    assert (job.created_count, job.error_count) == (3, 0)
    # Row 3 names Acme, created by row 2's batch: planned early. Row 4's Beta is new: planned again in its batch.
    assert planned == [([2], False, True), ([3], True, True), ([4], True, False), ([4], False, True)]
    with in_tenant(org_a):
        assert sorted(Contact.objects.values_list("first_name", "company__name")) == [
            ("A", "Acme"),
            ("B", "Acme"),
            ("C", "Beta"),
        ]
        assert OutboxEvent.objects.filter(type="company.created").count() == 2

    planned.clear()
    content = csv_bytes([header[:2], ["Ada", "a@example.test"], ["Bea", "b@example.test"]])
    _response, job = run_import(content, policy="update")

    assert job.updated_count == 2
    assert planned == [([2], False, True), ([3], True, False), ([3], False, True)]
    with in_tenant(org_a):
        assert sorted(Contact.objects.values_list("first_name", flat=True)) == ["Ada", "Bea", "C"]


def test_a_contacts_limit_that_comes_into_force_after_a_batch_was_planned_counts_for_it(
    run_import, org_a, in_tenant, settings, monkeypatch
):
    """A batch planned early without a limit is planned again in its own transaction if one has come into force,
    under the limit's lock."""
    from config.decision_cache import invalidate_decisions

    settings.IMPORT_BATCH_SIZE = 2
    real_room, rooms = imports.batches._contacts_room, []

    def room(setup):
        if len(rooms) == 2:  # after the second batch was planned early: the plan now allows what there is
            Override.objects.create(organization=org_a, limit="contacts", limit_value=2)
            invalidate_decisions(organization_id=org_a.pk)
        rooms.append(real_room(setup))
        return rooms[-1]

    monkeypatch.setattr(imports.batches, "_contacts_room", room)
    content = csv_bytes([HEADER] + [["C", str(i), f"c{i}@example.test", ""] for i in range(4)])
    _response, job = run_import(content)

    assert rooms == [None, None, 0, 0]  # first batch, second planned early, its check, its plan again
    assert (job.created_count, job.error_count) == (2, 2)
    with in_tenant(org_a):
        assert Contact.objects.count() == 2
