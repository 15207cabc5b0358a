# The email a sender has in the provider's hands is named by the sender's row in outbound_in_flight instead of a
# status of its own (SENDING): a new version of the email's wide, many-indexed row for every email sent cost the
# database more than anything else in recording the email. Emails found SENDING become CLAIMED, named in flight
# for their holder, so recovery treats them exactly as before.

import django.db.models.deletion
from django.db import migrations, models


def sending_to_in_flight(apps, schema_editor):
    OutboundEmail = apps.get_model("cam", "OutboundEmail")
    SendInFlight = apps.get_model("cam", "SendInFlight")
    for pk, holder in OutboundEmail.objects.filter(status="SENDING").values_list("pk", "claimed_by").iterator():
        holder = holder or f"migrated:{pk}"  # always set in practice; recovery needs one to match
        SendInFlight.objects.update_or_create(holder=holder, defaults={"email_id": pk})
        OutboundEmail.objects.filter(pk=pk).update(status="CLAIMED", claimed_by=holder)


def in_flight_to_sending(apps, schema_editor):
    OutboundEmail = apps.get_model("cam", "OutboundEmail")
    SendInFlight = apps.get_model("cam", "SendInFlight")
    for holder, email_id in SendInFlight.objects.values_list("holder", "email_id"):
        OutboundEmail.objects.filter(pk=email_id, claimed_by=holder, status="CLAIMED").update(status="SENDING")


class Migration(migrations.Migration):

    dependencies = [
        ('cam', '0034_outbound_ready_idx'),
    ]

    operations = [
        migrations.CreateModel(
            name='SendInFlight',
            fields=[
                ('holder', models.CharField(help_text="The sender's claim (``claimed_by``).", max_length=200,
                                            primary_key=True, serialize=False)),
                ('email', models.ForeignKey(db_constraint=False, db_index=False,
                                            on_delete=django.db.models.deletion.DO_NOTHING, related_name='+',
                                            to='cam.outboundemail')),
            ],
            options={
                'db_table': 'outbound_in_flight',
            },
        ),
        migrations.RunPython(sending_to_in_flight, in_flight_to_sending),
        migrations.AlterField(
            model_name='outboundemail',
            name='status',
            field=models.CharField(choices=[('PENDING', 'Pending'), ('CLAIMED', 'Claimed for sending'), ('SENT', 'Sent'),
                                            ('RETRY', 'Waiting to retry'), ('FAILED', 'Failed'),
                                            ('UNKNOWN', 'Unknown (check before resending)'),
                                            ('CANCELLED', 'Cancelled')],
                                   default='PENDING', max_length=16),
        ),
    ]
