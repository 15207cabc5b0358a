"""A campaign's time zone: a known IANA name, and anything else refused as a validation error."""

import pytest
from django.core.exceptions import ValidationError

from cam.models.fields import validate_timezone


@pytest.mark.parametrize("name", ["Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires", ""])
def test_it_accepts_known_zones(name):
    validate_timezone(name)


@pytest.mark.parametrize("name", ["Mars/Olympus", "1" * 400, "Europe/Ber\x00lin", "../../etc/passwd", "/etc/hosts"])
def test_it_refuses_anything_else_with_a_message(name):
    with pytest.raises(ValidationError, match="is not a known time zone"):
        validate_timezone(name)
