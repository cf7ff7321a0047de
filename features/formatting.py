"""How numbers, percentages, money, dates and counts are written, in English and Korean.

The one formatter of the project: the marketer page, the driver sentences and the
next-best-action reasons all write values through it, so an amount reads the same everywhere.
Money takes its currency's decimals (none for KRW, JPY and the other
:data:`ZERO_DECIMAL_CURRENCIES`, two otherwise); a missing value (None or NaN) reads as an em
dash where a page cell shows it. Words (units, names) come from :mod:`lifecycle.features.glossary`.
"""

from __future__ import annotations

from datetime import date as Date

from lifecycle.features.glossary import Lang, text

MISSING = "\u2014"
"""What a missing value (None or NaN) reads as."""

ZERO_DECIMAL_CURRENCIES = frozenset({"CLP", "ISK", "JPY", "KRW", "VND"})
"""Currencies quoted without minor units."""


def _missing(value: float | None) -> bool:
    return value is None or value != value  # NaN is the only value not equal to itself


def tidy(value: float, digits: int) -> float:
    """Round to ``digits``, turning -0.0 into 0.0 so that no "-0" is ever written."""
    return round(value, digits) + 0.0


def currency_digits(currency: str | None) -> int:
    """Return the decimals an amount in ``currency`` is written with.

    Examples
    --------
    >>> currency_digits("KRW"), currency_digits("usd"), currency_digits(None)
    (0, 2, 2)
    """
    return 0 if (currency or "").upper() in ZERO_DECIMAL_CURRENCIES else 2


def number(value: float | None, lang: Lang = "en", digits: int = 0) -> str:
    """Write a number with thousands separators and ``digits`` decimals (missing: a dash).

    Examples
    --------
    >>> number(12345.6, "ko"), number(0.256, "en", 2), number(None)
    ('12,346', '0.26', '—')
    """
    if _missing(value):
        return MISSING
    return f"{tidy(float(value), digits):,.{digits}f}"  # type: ignore[arg-type]


def trimmed_number(value: float) -> str:
    """Write a number of unknown meaning: whole numbers bare, others with up to 2 decimals.

    Examples
    --------
    >>> trimmed_number(3.5), trimmed_number(2.0), trimmed_number(1234.567)
    ('3.5', '2', '1,234.57')
    """
    written = f"{tidy(value, 2):,.2f}"
    return written.rstrip("0").rstrip(".") if "." in written else written


def percent(value: float | None, lang: Lang = "en") -> str:
    """Write a share as a whole percentage (missing: a dash).

    Examples
    --------
    >>> percent(0.256), percent(-0.001), percent(float("nan"))
    ('26%', '0%', '—')
    """
    if _missing(value):
        return MISSING
    return f"{tidy(100 * float(value), 0):.0f}%"  # type: ignore[arg-type]


def money(value: float | None, currency: str | None, lang: Lang = "en") -> str:
    """Write an amount with its currency's decimals and code (missing: a dash).

    Parameters
    ----------
    value
        The amount.
    currency
        ISO code written after the amount; None or empty writes the amount alone (with two
        decimals).
    lang
        ``en`` or ``ko`` (both write amounts the same way).

    Returns
    -------
    str
        For instance ``1,234.50 USD`` or ``12,000 KRW``.

    Examples
    --------
    >>> money(12000.4, "KRW"), money(-5, "EUR"), money(7.5, None)
    ('12,000 KRW', '-5.00 EUR', '7.50')
    """
    if _missing(value):
        return MISSING
    amount = number(value, lang, currency_digits(currency))
    return f"{amount} {currency}" if currency else amount


COMPACT_UNITS: dict[str, tuple[tuple[float, str], ...]] = {
    "en": ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")),
    "ko": ((1e12, "조"), (1e8, "억"), (1e4, "만")),
}
"""The units a compact amount is written in, largest first (Korean counts in 만 and 억)."""


def compact_money(value: float | None, currency: str | None, lang: Lang = "en") -> str:
    """Write an amount at the precision a person reads: three significant digits and a unit.

    Below a thousand (ten thousand in Korean) the amount is written in whole units, with
    the currency's decimals only under 10 (``7.50 USD``); currencies without minor units
    (KRW) never get decimals. The exact amount is :func:`money`'s: the page shows it on hover
    and the CSV keeps it.

    Parameters
    ----------
    value
        The amount.
    currency
        ISO code written after the amount (None or empty: the amount alone).
    lang
        ``en`` (K, M, B) or ``ko`` (만, 억, 조).

    Returns
    -------
    str
        For instance ``94.4K USD``, ``1.23M KRW`` or ``9.44만 USD``; a dash when missing.

    Examples
    --------
    >>> compact_money(94412.35, "USD"), compact_money(1234567, "KRW"), compact_money(7.5, "USD")
    ('94.4K USD', '1.23M KRW', '7.50 USD')
    >>> compact_money(94412.35, "USD", "ko"), compact_money(-350.4, "EUR"), compact_money(0, "USD")
    ('9.44만 USD', '-350 EUR', '0 USD')
    """
    if _missing(value):
        return MISSING
    amount = float(value)  # type: ignore[arg-type]
    size = abs(amount)
    written = ""
    for scale, unit in COMPACT_UNITS[lang]:
        if size >= scale * 0.9995:  # 999,600 reads as 1M, never as 1000K
            scaled = amount / scale
            digits = max(0, 2 - len(str(int(abs(round(scaled, 2))))) + 1)
            written = trimmed(tidy(scaled, digits), digits) + unit
            break
    if not written:
        digits = currency_digits(currency) if 0 < size < 10 else 0
        written = number(amount, lang, digits)
    return f"{written} {currency}" if currency else written


def trimmed(value: float, digits: int) -> str:
    """Write ``value`` with up to ``digits`` decimals, trailing zeros dropped.

    Examples
    --------
    >>> trimmed(94.40, 1), trimmed(1.20, 2), trimmed(120.0, 0)
    ('94.4', '1.2', '120')
    """
    written = f"{value:,.{digits}f}"
    return written.rstrip("0").rstrip(".") if "." in written else written


def date(value: Date, lang: Lang = "en") -> str:
    """Write a date: "Jan 5, 2026" or "2026년 1월 5일".

    Examples
    --------
    >>> from datetime import date as d
    >>> date(d(2026, 1, 5), "en"), date(d(2026, 1, 5), "ko")
    ('Jan 5, 2026', '2026년 1월 5일')
    """
    if lang == "ko":
        return f"{value.year}년 {value.month}월 {value.day}일"
    return f"{value:%b} {value.day}, {value.year}"


def plural(word: str, n: int) -> str:
    """Return an English noun for ``n`` of it: every glossary noun takes an ``s``."""
    return word if abs(n) == 1 or not word else word + "s"


def with_unit(written: str, unit: str, lang: Lang = "en") -> str:
    """Join a written number and its unit: "3.2 times the usual gap", "3.2배" (no unit: as is)."""
    if not unit:
        return written
    return f"{written}{unit}" if lang == "ko" else f"{written} {unit}"


def counted(n: int, unit: str, lang: Lang = "en") -> str:
    """Write a whole count with its unit: "1 day", "3 days", "3일" (no unit: the number).

    ``unit`` is the English noun (singular) or the Korean counter.

    Examples
    --------
    >>> counted(3, "purchase"), counted(1, "purchase"), counted(1200, "회", "ko")
    ('3 purchases', '1 purchase', '1,200회')
    """
    return with_unit(f"{n:,}", unit if lang == "ko" else plural(unit, n), lang)


def days(value: float, lang: Lang = "en") -> str:
    """Write a number of days, rounded to whole days: "21 days", "21일".

    Examples
    --------
    >>> days(20.6), days(1.2, "ko")
    ('21 days', '1일')
    """
    return counted(round(value), text("phrase.day", lang), lang)
