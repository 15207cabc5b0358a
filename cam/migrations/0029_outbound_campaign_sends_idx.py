# The rules step reads each campaign's last sends, newest first, from this index alone (cam.decisions): a
# window of a thousand sends is a thousand index entries, not a thousand visits to the table. Built
# CONCURRENTLY on PostgreSQL, so sending goes on meanwhile; a plain CREATE INDEX elsewhere.

from django.db import migrations, models

from cam.migrations._concurrently import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ('cam', '0028_inbound_auth_failure'),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name='outboundemail',
            index=models.Index(condition=models.Q(('kind', 'sequence'), ('status', 'SENT')),
                               fields=['campaign', 'sent_at', 'id'], name='outbound_campaign_sends_idx'),
        ),
    ]
