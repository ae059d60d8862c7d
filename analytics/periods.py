"""Time in the organization's time zone: periods, their previous period, and the buckets of a time series.

Days, weeks (Monday to Sunday) and months are the organization's local ones; a period ``[start, end]`` of local
dates covers the instants from ``start``'s local midnight to the midnight after ``end``, so a day across a DST change
is 23 or 25 hours long and still one day.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings

from .choices import Interval

# Periods are bounded so that date arithmetic (a previous period, a month's end) never leaves the calendar.
MIN_DATE = date(1970, 1, 1)
MAX_DATE = date(2999, 12, 31)
MAX_PERIOD_DAYS = 3660  # ten years


def time_zone_name(organization) -> str:
    """The organization's time zone name; the project's default until organizations carry one."""
    return getattr(organization, "time_zone", None) or settings.TIME_ZONE


def time_zone_of(organization) -> ZoneInfo:
    try:
        return ZoneInfo(time_zone_name(organization))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The instant the local ``day`` starts, in UTC."""
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


@dataclass(frozen=True)
class Period:
    """Local dates ``start`` to ``end``, both included. ``unit``: the calendar unit it spans (its previous period is
    the unit before), or ``None`` for a number of days (its previous period is as many days before)."""

    start: date
    end: date
    tz: ZoneInfo
    unit: str | None = None
    name: str = "custom"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def start_at(self) -> datetime:
        return local_midnight(self.start, self.tz)

    @property
    def end_at(self) -> datetime:
        """The instant after the period (the next local midnight)."""
        return local_midnight(self.end + timedelta(days=1), self.tz)

    def previous(self) -> Period:
        if self.unit == "week":
            return Period(self.start - timedelta(days=7), self.start - timedelta(days=1), self.tz, self.unit)
        if self.unit in ("month", "quarter", "year"):
            months = {"month": 1, "quarter": 3, "year": 12}[self.unit]
            start = add_months(self.start, -months)
            return Period(start, self.start - timedelta(days=1), self.tz, self.unit)
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1), self.tz)

    def key(self) -> list[str]:
        return [self.start.isoformat(), self.end.isoformat(), self.tz.key]


PRESETS = (
    "today",
    "last_7_days",
    "last_30_days",
    "last_90_days",
    "last_365_days",
    "this_week",
    "last_week",
    "this_month",
    "last_month",
    "this_quarter",
    "last_quarter",
    "this_year",
    "last_year",
)
DEFAULT_PRESET = "last_30_days"


def preset(name: str, *, today: date, tz: ZoneInfo) -> Period:
    """A named period relative to the organization's ``today`` (rolling ones end today)."""
    if name == "today":
        return Period(today, today, tz, name=name)
    if name.startswith("last_") and name.endswith("_days"):
        days = int(name.split("_")[1])
        return Period(today - timedelta(days=days - 1), today, tz, name=name)
    which, unit = name.split("_", 1)
    if unit == "week":
        start = week_start(today)
        period = Period(start, start + timedelta(days=6), tz, unit)
    elif unit == "month":
        period = Period(month_start(today), month_end(today), tz, unit)
    elif unit == "quarter":
        start = quarter_start(today)
        period = Period(start, add_months(start, 3) - timedelta(days=1), tz, unit)
    else:
        period = Period(date(today.year, 1, 1), date(today.year, 12, 31), tz, unit)
    period = period.previous() if which == "last" else period
    return Period(period.start, period.end, tz, unit, name=name)


def bucket_of(day: date, interval: str) -> date:
    if interval == Interval.WEEK:
        return week_start(day)
    if interval == Interval.MONTH:
        return month_start(day)
    return day


def bucket_end(start: date, interval: str) -> date:
    if interval == Interval.WEEK:
        return start + timedelta(days=6)
    if interval == Interval.MONTH:
        return month_end(start)
    return start


def buckets(period: Period, interval: str) -> Iterator[date]:
    """The first day of every bucket that meets the period (the first and last may stick out of it)."""
    current = bucket_of(period.start, interval)
    while current <= period.end:
        yield current
        current = bucket_end(current, interval) + timedelta(days=1)


def bucket_count(period: Period, interval: str) -> int:
    if interval == Interval.DAY:
        return period.days
    if interval == Interval.WEEK:
        return (week_start(period.end) - week_start(period.start)).days // 7 + 1
    return (period.end.year - period.start.year) * 12 + period.end.month - period.start.month + 1
