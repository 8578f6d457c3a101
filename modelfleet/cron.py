"""Five-field cron (what people write) to AWS's six-field form, and the hours it leaves running.

Application Auto Scaling takes `cron(Minutes Hours Day-of-month Month Day-of-week Year)`, in
which one of the two day fields must be `?` and day-of-week counts 1-7 from Sunday
(https://docs.aws.amazon.com/autoscaling/application/userguide/scheduled-scaling-using-cron-expressions.html,
read 2026-11-23). Standard cron counts 0-6 from Sunday and ORs the day fields. We accept the
standard form, reject what AWS cannot express, and render day-of-week by name so the two
numberings can never be confused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


class CronError(ValueError):
    pass


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int] | None  # day of month, None = any
    months: frozenset[int] | None
    weekdays: frozenset[int] | None  # 0 = Sunday, None = any

    def matches(self, t: datetime) -> bool:
        return (
            t.minute in self.minutes
            and t.hour in self.hours
            and (self.days is None or t.day in self.days)
            and (self.months is None or t.month in self.months)
            and (self.weekdays is None or (t.isoweekday() % 7) in self.weekdays)
        )

    def to_aws(self) -> str:
        fields = self.expression.split()
        minute = _render(self.minutes, 0, 59, fields[0])
        hour = _render(self.hours, 0, 23, fields[1])
        month = "*" if self.months is None else ",".join(str(m) for m in sorted(self.months))
        if self.weekdays is not None:
            dom, dow = "?", ",".join(DAY_NAMES[d] for d in sorted(self.weekdays))
        else:
            dom = "*" if self.days is None else ",".join(str(d) for d in sorted(self.days))
            dow = "?"
        return f"cron({minute} {hour} {dom} {month} {dow} *)"


def _render(values: frozenset[int], lo: int, hi: int, original: str) -> str:
    if len(values) == hi - lo + 1:
        return "*"
    if original.isdigit():
        return original
    return ",".join(str(v) for v in sorted(values))


def _field(text: str, lo: int, hi: int, names: tuple[str, ...] | None, what: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, _, step_text = part.partition("/")
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{what}: bad step {step_text!r}")
            step = int(step_text)
        if part == "*":
            start, end = lo, hi
        elif "-" in part:
            a, _, b = part.partition("-")
            start, end = _value(a, lo, hi, names, what), _value(b, lo, hi, names, what)
            if start > end:
                raise CronError(f"{what}: range {part!r} runs backwards")
        else:
            start = end = _value(part, lo, hi, names, what)
            if step != 1:
                end = hi
        out.update(range(start, end + 1, step))
    return out


def _value(text: str, lo: int, hi: int, names: tuple[str, ...] | None, what: str) -> int:
    if names and text.upper() in names:
        return names.index(text.upper()) + (lo if names is MONTH_NAMES else 0)
    if not text.isdigit():
        raise CronError(f"{what}: {text!r} is not a number" + (" or a name" if names else ""))
    v = int(text)
    if not lo <= v <= hi:
        raise CronError(f"{what}: {v} is outside {lo}-{hi}")
    return v


def parse_cron(expression: str) -> Cron:
    fields = expression.split()
    if len(fields) != 5:
        raise CronError(
            f"cron {expression!r} needs five fields (minute hour day-of-month month "
            'day-of-week), e.g. "0 20 * * MON-FRI"'
        )
    minute, hour, dom, month, dow = fields
    days = None if dom in ("*", "?") else frozenset(_field(dom, 1, 31, None, "day-of-month"))
    # Both 0 and 7 mean Sunday in standard cron; keep 7 through range parsing so that "5-7"
    # (Friday to Sunday) is a forward range, then fold it onto 0.
    weekdays = (
        None
        if dow in ("*", "?")
        else frozenset(d % 7 for d in _field(dow, 0, 7, DAY_NAMES, "day-of-week"))
    )
    if days is not None and weekdays is not None:
        raise CronError(
            f"cron {expression!r} restricts both day-of-month and day-of-week; AWS accepts "
            "only one of them (the other must be *)"
        )
    return Cron(
        expression=expression,
        minutes=frozenset(_field(minute, 0, 59, None, "minute")),
        hours=frozenset(_field(hour, 0, 23, None, "hour")),
        days=days,
        months=None if month == "*" else frozenset(_field(month, 1, 12, MONTH_NAMES, "month")),
        weekdays=weekdays,
    )


# The period a schedule repeats over, in wall-clock time of the schedule's zone (as AWS
# evaluates it; a DST change shifts an hour between weeks, not in total). Schedules by day of
# week repeat every week; one that names months or days of the month needs the whole year,
# or a "June to August" scale-up never fires in the sample and the fleet looks always off.
_WEEK_START = datetime(2026, 1, 5)  # a Monday
_YEAR_START = datetime(2026, 1, 1)  # 2026 is not a leap year


def _firings(cron: Cron, start: datetime, days: int) -> list[int]:
    """Minutes from `start` at which `cron` fires, over `days` days."""
    out = []
    for day in range(days):
        d = start + timedelta(days=day)
        if cron.matches(d.replace(hour=min(cron.hours), minute=min(cron.minutes))):
            out += [day * 1440 + h * 60 + m for h in cron.hours for m in cron.minutes]
    return out


def _events(scale_down: str, scale_up: str) -> tuple[list[tuple[int, int, bool]], int]:
    """(minute, order, running after it) for every firing over the period, and its length."""
    down, up = parse_cron(scale_down), parse_cron(scale_up)
    weekly = all(c.days is None and c.months is None for c in (down, up))
    start, days = (_WEEK_START, 7) if weekly else (_YEAR_START, 365)
    # At the same minute scale-down wins: sort it after scale-up, keep the last of a minute.
    events = sorted(
        [(t, 1, False) for t in _firings(down, start, days)]
        + [(t, 0, True) for t in _firings(up, start, days)]
    )
    last = {e[0]: e for e in events}
    return sorted(last.values()), days * 1440


def running_fraction(scale_down: str, scale_up: str) -> float:
    """Share of wall-clock time the fleet runs between scale-up and scale-down."""
    events, period = _events(scale_down, scale_up)
    if not events:
        return 1.0
    # The period repeats, so it starts in the state its last event left.
    running, since, on = events[-1][2], 0, 0
    for t, _, state in events:
        if running:
            on += t - since
        running, since = state, t
    if running:
        on += period - since
    return on / period


def starts_per_month(scale_down: str, scale_up: str, hours_per_month: float = 730.0) -> float:
    """Scale-ups that start a stopped fleet, per month (one that finds it running does not)."""
    events, period = _events(scale_down, scale_up)
    if not events:
        return 0.0
    running, starts = events[-1][2], 0
    for _, _, state in events:
        starts += state and not running
        running = state
    return starts * hours_per_month * 60 / period
