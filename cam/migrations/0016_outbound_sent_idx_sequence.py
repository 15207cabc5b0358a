# The dashboard counts the sequence's sent emails from the partial index of sent ones alone (cam.reporting);
# answers written by a person are not sends, so the index holds the sequence's only. Rebuilt CONCURRENTLY on
# PostgreSQL, so sending goes on meanwhile; a plain DROP / CREATE INDEX elsewhere.

from django.db import migrations, models

from cam.migrations._concurrently import AddIndexConcurrentlyOnPostgres, RemoveIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    # CREATE / DROP INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ('cam', '0015_outbound_answers'),
    ]

    operations = [
        RemoveIndexConcurrentlyOnPostgres(
            model_name='outboundemail',
            name='outbound_sent_idx',
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='outboundemail',
            index=models.Index(condition=models.Q(('kind', 'sequence'), ('status', 'SENT')), fields=['sent_at'],
                               name='outbound_sent_idx'),
        ),
    ]
