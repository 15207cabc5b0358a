from django.core.validators import MinValueValidator
from django.db import migrations, models


class Migration(migrations.Migration):
    """The warm-up plan. Mailboxes that exist already send every day: their warm-up is added switched off
    (the column's default while it is added), and only mailboxes created from now on start with it on."""

    dependencies = [
        ("cam", "0025_sending_domain"),
    ]

    operations = [
        migrations.AddField(
            model_name="mailbox",
            name="warmup_enabled",
            field=models.BooleanField(default=False, verbose_name="warm up"),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="mailbox",
            name="warmup_enabled",
            field=models.BooleanField(
                default=True,
                help_text="Start low and add a few emails each day up to the daily cap, so a new mailbox does not "
                          "burn its domain. Turn it off for a mailbox that already sends every day.",
                verbose_name="warm up"),
        ),
        migrations.AddField(
            model_name="mailbox",
            name="warmup_start",
            field=models.PositiveIntegerField(default=10, validators=[MinValueValidator(1)],
                                              verbose_name="first day's emails"),
        ),
        migrations.AddField(
            model_name="mailbox",
            name="warmup_increment",
            field=models.PositiveIntegerField(default=5, validators=[MinValueValidator(1)],
                                              verbose_name="more each day"),
        ),
        migrations.AddField(
            model_name="mailbox",
            name="warmup_started_on",
            field=models.DateField(
                blank=True, null=True,
                help_text="Set by the first send; a campaign rule that pauses a campaign moves it so the ramp "
                          "restarts from half of where it was.",
                verbose_name="warm-up day one"),
        ),
    ]
