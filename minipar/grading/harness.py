"""Running a student's function safely in this process: a deadline, and their errors as one line.

``call(fn, args, timeout)`` gives ``(result, None)`` or ``(None, what went wrong)``;
``close(got, want, name)`` compares arrays and says where they differ.
"""

from __future__ import annotations

import signal

import numpy as np

from minipar.grading.report import first_line, student_where

_missing: set = set()  # NotImplementedError messages already reported in this grading


class _Alarm(Exception):
    pass


def _ring(signum, frame):
    raise _Alarm()


def call(fn, args, timeout):
    """(result, None) or (None, what went wrong): an exception or running past ``timeout``.
    A stub's NotImplementedError is spelled out once, then referred to."""
    old = signal.signal(signal.SIGALRM, _ring)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return fn(*args), None
    except _Alarm:
        return None, f"did not return within {timeout:g} s (an endless loop?)"
    except NotImplementedError as exc:
        if str(exc) in _missing:
            return None, "not implemented yet (as above)"
        _missing.add(str(exc))
        return None, f"not implemented yet ({first_line(exc)}, at {student_where(exc)})"
    except Exception as exc:  # the student's error is the report, not a crash
        return None, f"{first_line(exc)} (at {student_where(exc)})"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def close(got, want, name, rtol=1e-12) -> str | None:
    """None if ``got`` matches ``want`` to ``rtol`` (relative to max(1, |want|))."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    if got.shape == want.shape and (err <= rtol).all():
        return None
    if got.shape != want.shape:
        return f"{name} has shape {got.shape}, expected {want.shape}"
    i = np.unravel_index(int(np.argmax(err)), err.shape)
    at = f" at {tuple(int(k) for k in i)}" if got.ndim else ""
    return f"{name} is wrong{at}: {got[i]:.9g}, expected {want[i]:.9g}"


def forget_missing() -> None:
    """Start a new grading: report each stub's NotImplementedError once again."""
    _missing.clear()
