# The reply desk: who handles a reply and whether it is done (InboundEmail.handled_at, handled_by, assigned_to),
# the Reply proxy its admin lists, and the index of its hot filter (what people wrote that nobody has handled,
# warmest first, newest first), so the inbox and its sidebar badge read a few index entries on any table size.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from cam.migrations._concurrently import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction. The three columns are nullable, so adding them
    # changes no existing row.
    atomic = False

    dependencies = [
        ('cam', '0020_sequence_step_enabled_and_rule_clearing'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Reply',
            fields=[
            ],
            options={
                'verbose_name': 'reply',
                'verbose_name_plural': 'replies',
                'proxy': True,
                'default_permissions': (),
                'indexes': [],
                'constraints': [],
            },
            bases=('cam.inboundemail',),
        ),
        migrations.AddField(
            model_name='inboundemail',
            name='assigned_to',
            field=models.ForeignKey(blank=True, help_text='The staff member who answers it.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='replies_assigned', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='inboundemail',
            name='handled_at',
            field=models.DateTimeField(blank=True, help_text='When a person marked the reply handled (answered, or nothing to do).', null=True),
        ),
        migrations.AddField(
            model_name='inboundemail',
            name='handled_by',
            field=models.ForeignKey(blank=True, db_index=False, help_text='Who marked it handled; empty when an API key did.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='replies_handled', to=settings.AUTH_USER_MODEL),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='inboundemail',
            index=models.Index(models.OrderBy(models.Case(models.When(category='POSITIVE', then=models.Value(0)), models.When(category='QUESTION', then=models.Value(1)), models.When(category='REFERRAL', then=models.Value(2)), models.When(category__in=['NEGATIVE', 'NEUTRAL'], then=models.Value(3)), models.When(category='UNSUBSCRIBE', then=models.Value(4)), default=models.Value(5), output_field=models.IntegerField())), models.OrderBy(models.F('created_at'), descending=True), models.OrderBy(models.F('id'), descending=True), condition=models.Q(('category__in', ('POSITIVE', 'QUESTION', 'REFERRAL', 'NEGATIVE', 'NEUTRAL', 'UNSUBSCRIBE', '')), ('handled_at__isnull', True)), name='inbound_desk_idx'),
        ),
    ]
