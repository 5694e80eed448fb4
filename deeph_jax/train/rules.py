"""Value rules of config keys: each rule checks one value and returns it normalized.

A rule raises :class:`NotAllowed` for a bad value; :func:`check_section` turns that into one
:class:`~deeph_jax.errors.DeephError` line naming the key, the value and what is allowed.
Numbers given as strings are accepted because PyYAML reads ``1e-3`` (no dot) as a string,
and ``--set train.lr=1e-3`` is what users type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from deeph_jax.errors import DeephError


class NotAllowed(Exception):
    """A value outside a rule; the rule's ``allowed`` says what would do."""


def _as_number(value) -> float:
    if isinstance(value, bool):
        raise NotAllowed
    if isinstance(value, (int, float)):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value)
        except ValueError:
            raise NotAllowed from None
    else:
        raise NotAllowed
    if not math.isfinite(x):
        raise NotAllowed
    return x


def _bound_text(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if high == math.inf:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


@dataclass(frozen=True)
class Number:
    """A finite real number within bounds (open or closed ends)."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    @property
    def allowed(self) -> str:
        return f"a number {_bound_text(self.low, self.high, self.low_open, self.high_open)}"

    def __call__(self, value) -> float:
        x = _as_number(value)
        if x < self.low or x > self.high or (self.low_open and x == self.low) or (self.high_open and x == self.high):
            raise NotAllowed
        return x


@dataclass(frozen=True)
class Integer:
    """An integer >= ``low`` (and <= ``high`` when given; an integral float such as 1e4 is accepted and made
    an int)."""

    low: int = 0
    high: int | None = None

    @property
    def allowed(self) -> str:
        return f"an integer >= {self.low}" + ("" if self.high is None else f" and <= {self.high}")

    def __call__(self, value) -> int:
        x = _as_number(value)
        if x != int(x) or x < self.low or (self.high is not None and x > self.high):
            raise NotAllowed
        return int(x)


@dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]

    @property
    def allowed(self) -> str:
        return "one of " + ", ".join(self.options)

    def __call__(self, value) -> str:
        if value not in self.options:
            raise NotAllowed
        return value


@dataclass(frozen=True)
class Flag:
    allowed = "true or false"

    def __call__(self, value) -> bool:
        if not isinstance(value, bool):
            raise NotAllowed
        return value


@dataclass(frozen=True)
class Text:
    """A non-empty string (a name, a path, a host:port)."""

    allowed = "a non-empty string"

    def __call__(self, value) -> str:
        if not isinstance(value, str) or not value.strip():
            raise NotAllowed
        return value


@dataclass(frozen=True)
class Folders:
    """A folder path, or a non-empty list of them."""

    allowed = "a folder path or a list of folder paths"

    def __call__(self, value) -> str | list[str]:
        if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
            return value
        return Text()(value)


@dataclass(frozen=True)
class Channels:
    """Channel counts per l: a list of integers >= 0, the first >= 1 (the scalars carry the embedding)."""

    allowed = "a list of integers >= 0 (one per l = 0..lmax, the first >= 1)"

    def __call__(self, value) -> list[int]:
        if not isinstance(value, (list, tuple)) or not value:
            raise NotAllowed
        counts = [Integer(0)(v) for v in value]
        if counts[0] < 1:
            raise NotAllowed
        return counts


@dataclass(frozen=True)
class EnergyWindow:
    """Two numbers [low, high], low < high (eV)."""

    allowed = "a list [low, high] of two numbers (eV), low < high"

    def __call__(self, value) -> list[float]:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise NotAllowed
        low, high = (_as_number(v) for v in value)
        if not low < high:
            raise NotAllowed
        return [low, high]


@dataclass(frozen=True)
class Optional:
    """``null`` or a value of ``rule``."""

    rule: Callable

    @property
    def allowed(self) -> str:
        return f"{self.rule.allowed}, or null"

    def __call__(self, value):
        return None if value is None else self.rule(value)


def check_value(key: str, value, rule, source) -> Any:
    """``rule(value)``, or one DeephError line: ``KEY = VALUE: must be ALLOWED``."""
    try:
        return rule(value)
    except NotAllowed:
        raise DeephError(f"{key} = {value!r}: must be {rule.allowed}", source) from None


def check_section(values: dict, rules: dict, section: str, source_of: Callable[[str], Any]) -> dict:
    """Every key of ``values`` through its rule; returns the normalized values (same keys)."""
    out = dict(values)
    for name, rule in rules.items():
        if name in values:
            key = f"{section}.{name}"
            out[name] = check_value(key, values[name], rule, source_of(key))
    return out
