"""The demo generator's traffic profile (scripts/generate.py --history): how busy each
country is at a given moment, and which users and pages its events come from.

* A country's rate follows its local time of day: quietest at 04:00, busiest at 16:00
  (a third of the peak at night); weekends are quieter, and each (seed, country, day)
  gets its own factor of 0.85-1.15, so the days differ.
* The countries' shares of the traffic differ (US most, CA least; XX, which the quality
  rule rejects, among them).
* `rps` is the mean rate of all countries together over a weekday.
* Users belong to one country; a few are very active and most are not (user n of a
  country is drawn with probability ~1/n), so daily active users grow with traffic
  without every user showing up every day. Pages are drawn the same way (a clear top).

Everything is a function of (seed, time) and the caller's random generator: the same
seed gives the same events."""

from __future__ import annotations

import math
import random

SHARES = {"US": 0.26, "DE": 0.17, "UK": 0.15, "FR": 0.12, "JP": 0.12, "CA": 0.10, "XX": 0.08}
UTC_OFFSET_HOURS = {"US": -5, "CA": -8, "UK": 0, "DE": 1, "FR": 1, "JP": 9, "XX": 0}
USERS_PER_COUNTRY = 20_000
PAGES = 100
NIGHT = 0.3  # the quietest hour's rate, as a share of the busiest
_MEAN_OF_DAY = NIGHT + (1 - NIGHT) / 2  # the mean of time_of_day() over a day
_COUNTRIES = sorted(SHARES)


def time_of_day(local_hour: float) -> float:
    """NIGHT at 04:00 local time, 1.0 at 16:00, smooth in between."""
    return NIGHT + (1 - NIGHT) * (0.5 - 0.5 * math.cos(2 * math.pi * (local_hour - 4) / 24))


def day_factor(seed: int | None, country: str, local_day: int) -> float:
    """Weekends at three quarters, and a factor of 0.85-1.15 of the (seed, country, day)."""
    weekday = (local_day + 3) % 7  # day 0 (1970-01-01) was a Thursday; 5, 6 = Sat, Sun
    jitter = random.Random(f"{seed}:{country}:{local_day}").uniform(0.85, 1.15)
    return (0.75 if weekday >= 5 else 1.0) * jitter


class Profile:
    def __init__(self, rps: float, seed: int | None):
        self.rps, self.seed = rps, seed
        self._days: dict[tuple[str, int], float] = {}

    def rate(self, country: str, t: float) -> float:
        """Events per second from `country` at unix time `t`."""
        local = t + UTC_OFFSET_HOURS[country] * 3600
        day = int(local // 86_400)
        key = (country, day)
        if key not in self._days:
            self._days[key] = day_factor(self.seed, country, day)
        hour = (local % 86_400) / 3600
        return self.rps * SHARES[country] * time_of_day(hour) / _MEAN_OF_DAY * self._days[key]

    def rates(self, t: float) -> list[float]:
        return [self.rate(c, t) for c in _COUNTRIES]

    def next_event(self, rng: random.Random, t: float) -> tuple[float, str]:
        """The time of the next event after `t` (the rates taken as constant until
        then) and its country."""
        rates = self.rates(t)
        t += rng.expovariate(sum(rates))
        return t, rng.choices(_COUNTRIES, rates)[0]

    def user(self, rng: random.Random, country: str) -> int:
        """A user of `country`: ids are unique to a country; low ranks are the most active."""
        rank = _zipf(rng, USERS_PER_COUNTRY)
        return (rank - 1) * len(_COUNTRIES) + _COUNTRIES.index(country) + 1

    def page(self, rng: random.Random) -> str:
        return f"/page/{_zipf(rng, PAGES)}"


def _zipf(rng: random.Random, n: int) -> int:
    """1..n with probability ~1/k (log-uniform)."""
    return min(n, int(math.exp(rng.random() * math.log(n + 1))))


def parse_duration(text: str) -> float:
    """'72h', '3d', '90m', '45s' or plain seconds, in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
    text = text.strip().lower()
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)
