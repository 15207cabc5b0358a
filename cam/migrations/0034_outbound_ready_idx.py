# The sender claims one mailbox's due emails oldest first. The old index held every mailbox's due emails by
# time alone, so a claim joined and sorted all that were due (a plan writes thousands with one time) before
# taking its 50: about 10 ms a batch with 5,000 due, growing with the backlog. The new one is in the claim's
# own order, and a claim stops at its batch. It replaces the old one, so each sent email's commit still
# updates as many indexes. Built CONCURRENTLY on PostgreSQL before the old one goes, so sending goes on.

from django.db import migrations, models

from cam.migrations._concurrently import AddIndexConcurrentlyOnPostgres, RemoveIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    # CREATE and DROP INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ('cam', '0033_job_run_hours'),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name='outboundemail',
            index=models.Index(condition=models.Q(('kind', 'sequence'), ('status__in', ['PENDING', 'RETRY'])),
                               fields=['mailbox', 'next_attempt_at', 'id'], name='outbound_ready_idx'),
        ),
        RemoveIndexConcurrentlyOnPostgres(
            model_name='outboundemail',
            name='outbound_pending_idx',
        ),
    ]
