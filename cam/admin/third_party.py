"""The admins of the libraries CAM uses (users and groups, django-q2's schedules and tasks, django-axes'
login records), registered again on the theme's classes so every page of the back office looks alike.
Each keeps its library's behaviour: only the look changes."""

from __future__ import annotations

from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group, User
from django_q.admin import FailAdmin, QueueAdmin, ScheduleAdmin, TaskAdmin
from django_q.models import Failure, OrmQ, Schedule, Success
from unfold.admin import ModelAdmin
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm


def _register_again(model, library_admin: type[admin.ModelAdmin], **attrs) -> None:
    """Swap the library's registration for one on the theme's ModelAdmin, keeping its options."""
    if not admin.site.is_registered(model):
        return  # e.g. django-q2 registers the task queue only on its ORM broker
    admin.site.unregister(model)
    themed = type(library_admin.__name__, (library_admin, ModelAdmin), {"__module__": __name__, **attrs})
    admin.site.register(model, themed)


_register_again(User, DjangoUserAdmin, form=UserChangeForm, add_form=UserCreationForm,
                change_password_form=AdminPasswordChangeForm)
_register_again(Group, DjangoGroupAdmin)
_register_again(Schedule, ScheduleAdmin)
_register_again(Success, TaskAdmin)
_register_again(Failure, FailAdmin)
_register_again(OrmQ, QueueAdmin)
_register_again(AccessAttempt, AccessAttemptAdmin)
_register_again(AccessLog, AccessLogAdmin)
_register_again(AccessFailureLog, AccessFailureLogAdmin)
