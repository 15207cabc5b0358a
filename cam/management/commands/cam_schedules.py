from django.core.management.base import BaseCommand

from cam.jobs.schedules import declared_schedules, schedules_install


class Command(BaseCommand):
    help = "Install or update CAM's django-q2 schedules (idempotent, by name)."

    def handle(self, *args, **options) -> None:
        report = schedules_install()
        for spec in declared_schedules():
            state = next(key for key, names in report.items() if spec.schedule_name in names)
            self.stdout.write(f"{spec.schedule_name:<20} {spec.describe():<28} {state}")
        for name in report["removed"]:
            self.stdout.write(f"{name:<20} {'(no longer declared)':<28} removed")
