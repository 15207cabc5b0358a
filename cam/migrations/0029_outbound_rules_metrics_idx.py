# The rules step reads each campaign's last sends, newest first, from an index of the sequence's sent emails
# alone (cam.decisions): a window of a thousand sends is a thousand index entries, not a thousand visits to the
# table. The metrics step counts failed emails per campaign and mailbox from a small index of them alone.
# Built CONCURRENTLY on PostgreSQL, so sending goes on meanwhile; a plain CREATE INDEX elsewhere.

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
        AddIndexConcurrentlyOnPostgres(
            model_name='outboundemail',
            index=models.Index(condition=models.Q(('kind', 'sequence'), ('status', 'FAILED')),
                               fields=['campaign', 'mailbox'], include=['sent_at', 'updated_at'],
                               name='outbound_failed_idx'),
        ),
    ]
