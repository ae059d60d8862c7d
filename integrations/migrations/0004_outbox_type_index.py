"""The outbox's ``type`` keeps one index: ``db_index=True`` on a ``CharField`` also built a ``varchar_pattern_ops``
index for ``LIKE`` prefixes, which nothing asks (the event log filters types by equality), and every event written
paid for it. The plain index stays, renamed as a ``Meta`` index."""

from django.db import migrations, models

LIKE_INDEX = "integrations_outboxevent_type_7c4f394b_like"
PLAIN_INDEX = "integrations_outboxevent_type_7c4f394b"


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0003_webhookdelivery_claimed_at"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{LIKE_INDEX}"',
                    reverse_sql=f'CREATE INDEX "{LIKE_INDEX}" ON "integrations_outboxevent" ("type" varchar_pattern_ops)',
                ),
                migrations.RunSQL(
                    f'ALTER INDEX "{PLAIN_INDEX}" RENAME TO "outbox_type_idx"',
                    reverse_sql=f'ALTER INDEX "outbox_type_idx" RENAME TO "{PLAIN_INDEX}"',
                ),
            ],
            state_operations=[
                migrations.AlterField(model_name="outboxevent", name="type", field=models.CharField(max_length=64)),
                migrations.AddIndex(model_name="outboxevent", index=models.Index(fields=["type"], name="outbox_type_idx")),
            ],
        ),
    ]
