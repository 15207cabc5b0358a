# The leads of a source are indexed only where they have one: a lead imported from a file, typed into the admin
# or created through the API has none, and each such lead wrote an entry no query reads (a million-row import, a
# million entries). Built CONCURRENTLY on PostgreSQL before the foreign key's own index goes, so imports go on.

import django.db.models.deletion
from django.db import migrations, models

from cam.migrations._concurrently import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ('cam', '0037_lead_partial_indexes'),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name='lead',
            index=models.Index(condition=models.Q(('source__isnull', False)), fields=['source'],
                               name='lead_source_idx'),
        ),
        # Drops the foreign key's own index (a short lock: dropping is quick), now that the partial one is there.
        migrations.AlterField(
            model_name='lead',
            name='source',
            field=models.ForeignKey(blank=True, db_index=False, null=True,
                                    on_delete=django.db.models.deletion.SET_NULL, related_name='leads',
                                    to='cam.leadsource'),
        ),
    ]
