"""An import hands the interpreter between its two threads more often, and puts the interval back."""

import sys

from cam.pipeline.intake import SWITCH_INTERVAL, _quick_switches


def test_imports_at_once_share_the_change_and_the_last_one_puts_the_interval_back():
    before = sys.getswitchinterval()
    first, second = _quick_switches(), _quick_switches()
    first.__enter__()
    assert sys.getswitchinterval() == SWITCH_INTERVAL
    second.__enter__()
    first.__exit__(None, None, None)  # the first ends while the second still runs
    assert sys.getswitchinterval() == SWITCH_INTERVAL
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == before


def test_the_interval_is_put_back_when_an_import_fails():
    before = sys.getswitchinterval()
    try:
        with _quick_switches():
            raise ValueError("a file that cannot be read on")
    except ValueError:
        pass
    assert sys.getswitchinterval() == before
