# Two indexes that only sent emails use now leave the other versions of a row out: every email is written as
# claimed before it is sent, and each of those versions was written into both. Built CONCURRENTLY on PostgreSQL
# under new names before the old ones go, so sending goes on.

from django.db import migrations, models

from cam.migrations._concurrently import AddIndexConcurrentlyOnPostgres, RemoveIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    # CREATE and DROP INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ('cam', '0035_send_in_flight'),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name='outboundemail',
            index=models.Index(condition=models.Q(('sent_at__isnull', False)), fields=['campaign', 'sent_at'],
                               name='outbound_campaign_sent_at_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='outboundemail',
            index=models.Index(condition=models.Q(('provider_message_id', ''), _negated=True),
                               fields=['provider_message_id'], name='outbound_sent_msgid_idx'),
        ),
        RemoveIndexConcurrentlyOnPostgres(
            model_name='outboundemail',
            name='outbound_campaign_sent_idx',
        ),
        RemoveIndexConcurrentlyOnPostgres(
            model_name='outboundemail',
            name='outbound_provider_msgid_idx',
        ),
    ]
