# Two indexes of the leads hold only the leads their queries read: the dashboard's outcomes (a meeting booked,
# won, unsubscribed) by when they were reached, and the leads of a mailbox (most have none until their first
# email is planned). Every other lead's import, qualification and email sent wrote an entry into both. Built
# CONCURRENTLY on PostgreSQL before the old ones go, so imports and sending go on.

import django.db.models.deletion
from django.db import migrations, models

from cam.migrations._concurrently import AddIndexConcurrentlyOnPostgres, RemoveIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    # CREATE and DROP INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ('cam', '0036_outbound_sent_only_idx'),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name='lead',
            index=models.Index(condition=models.Q(('status__in', ['MEETING_BOOKED', 'UNSUBSCRIBED', 'WON'])),
                               fields=['status', 'status_changed_at'], name='lead_outcome_changed_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='lead',
            index=models.Index(condition=models.Q(('mailbox__isnull', False)), fields=['mailbox'],
                               name='lead_mailbox_idx'),
        ),
        RemoveIndexConcurrentlyOnPostgres(
            model_name='lead',
            name='lead_status_changed_idx',
        ),
        # Drops the foreign key's own index (a short lock: dropping is quick), now that the partial one is there.
        migrations.AlterField(
            model_name='lead',
            name='mailbox',
            field=models.ForeignKey(blank=True, db_index=False,
                                    help_text='The mailbox that sent the first email; follow-ups use it too.',
                                    null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='leads',
                                    to='cam.mailbox'),
        ),
    ]
