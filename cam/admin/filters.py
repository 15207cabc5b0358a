"""List filters shared by the back office's lists."""

from __future__ import annotations

from datetime import timedelta

from django.core.validators import EMPTY_VALUES
from django.utils.timezone import get_current_timezone, make_aware
from unfold.contrib.filters.admin import RangeDateTimeFilter
from unfold.utils import parse_datetime_str


class MomentRangeFilter(RangeDateTimeFilter):
    """The theme's from/to filter for a date-and-time field, read in the site's time zone, with the time optional:
    a "from" day alone starts at its midnight, a "to" day alone takes in the whole day.

    The theme's own filter hands the database naive datetimes (Django warns and guesses the zone) and ignores a
    day typed without a time, which looks like a filter that does nothing."""

    def queryset(self, request, queryset):
        filters = {}
        for end in ("from", "to"):
            day = self.used_parameters.get(f"{self.parameter_name}_{end}_0")
            if day in EMPTY_VALUES:
                continue
            time = self.used_parameters.get(f"{self.parameter_name}_{end}_1")
            moment = parse_datetime_str(f"{day} {time if time not in EMPTY_VALUES else '00:00'}")
            if moment is None:
                continue  # not a date the form takes: left out, as the theme does
            moment = make_aware(moment, get_current_timezone()) if moment.tzinfo is None else moment
            if end == "from":
                filters[f"{self.parameter_name}__gte"] = moment
            elif time in EMPTY_VALUES:
                filters[f"{self.parameter_name}__lt"] = moment + timedelta(days=1)
            else:
                filters[f"{self.parameter_name}__lte"] = moment
        return queryset.filter(**filters)

