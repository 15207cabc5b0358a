# The dashboard counts the sequence's sent emails from the partial index of sent ones alone (cam.reporting);
# answers written by a person are not sends, so the index holds the sequence's only. Rebuilt CONCURRENTLY on
# PostgreSQL, so sending goes on meanwhile; a plain DROP / CREATE INDEX elsewhere.

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models
from django.db.migrations.operations import AddIndex, RemoveIndex


class RemoveIndexConcurrentlyOnPostgres(RemoveIndexConcurrently):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            RemoveIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            RemoveIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


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
