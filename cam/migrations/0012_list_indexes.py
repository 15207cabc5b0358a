# The lists' indexes: each list's default order (newest first; the replies' triage order) and the leads' status
# filter, so a page of a table of millions reads a hundred index entries instead of sorting the table.

from django.db import migrations, models

from cam.migrations._concurrently import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ('cam', '0011_rule_wait_and_link_unsubscribes'),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name='lead',
            index=models.Index(fields=['-created_at', '-id'], name='lead_created_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='lead',
            index=models.Index(fields=['status', '-created_at', '-id'], name='lead_status_created_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='leadevent',
            index=models.Index(fields=['-created_at', '-id'], name='lead_event_created_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='outboundemail',
            index=models.Index(fields=['-created_at', '-id'], name='outbound_created_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='providerevent',
            index=models.Index(fields=['-received_at', '-id'], name='provider_event_received_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='inboundemail',
            index=models.Index(models.OrderBy(models.Case(models.When(category__in=['POSITIVE', 'REFERRAL', 'QUESTION'], then=models.Value(0)), models.When(confirmation='NEEDED', then=models.Value(1)), models.When(processed_at__isnull=True, then=models.Value(2)), models.When(lead__isnull=True, then=models.Value(3)), default=models.Value(4), output_field=models.IntegerField())), models.OrderBy(models.F('created_at'), descending=True), models.OrderBy(models.F('id'), descending=True), name='inbound_triage_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='suppression',
            index=models.Index(fields=['-created_at', '-id'], name='suppression_created_idx'),
        ),
    ]
