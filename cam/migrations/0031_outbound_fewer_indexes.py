# Every sent email's commit rewrites its outbound row, and with it every index of the table. Indexes another
# one already serves go: lead, campaign and mailbox each lead an index of their own (the unique (lead, step),
# (campaign, created_at), (mailbox, created_at)); author and answers, set on a person's answers only, keep
# partial indexes that the sequence's emails stay out of; and the pattern index PostgreSQL builds beside the
# unique Message-ID serves no query (lookups are exact; the list's search is a contains). The partial indexes
# are built CONCURRENTLY on PostgreSQL, so sending goes on meanwhile; dropping an index is quick.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from cam.migrations._concurrently import AddIndexConcurrentlyOnPostgres


def _drop_message_id_pattern_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS outbound_emails_message_id_51c5f252_like")


def _build_message_id_pattern_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS outbound_emails_message_id_51c5f252_like "
                              "ON outbound_emails (message_id varchar_pattern_ops)")


class Migration(migrations.Migration):
    # CREATE and DROP INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ('cam', '0030_lead_campaign_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name='outboundemail',
            index=models.Index(condition=models.Q(('author__isnull', False)), fields=['author'],
                               name='outbound_author_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='outboundemail',
            index=models.Index(condition=models.Q(('answers__isnull', False)), fields=['answers'],
                               name='outbound_answers_idx'),
        ),
        migrations.AlterField(
            model_name='outboundemail',
            name='answers',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='answers', to='cam.inboundemail'),
        ),
        migrations.AlterField(
            model_name='outboundemail',
            name='author',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='answers_sent', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='outboundemail',
            name='campaign',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='outbound_emails', to='cam.campaign'),
        ),
        migrations.AlterField(
            model_name='outboundemail',
            name='lead',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='outbound_emails', to='cam.lead'),
        ),
        migrations.AlterField(
            model_name='outboundemail',
            name='mailbox',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='outbound_emails', to='cam.mailbox'),
        ),
        migrations.RunPython(_drop_message_id_pattern_index, _build_message_id_pattern_index, elidable=False),
    ]
