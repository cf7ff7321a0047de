"""How a source's columns and values map onto the canonical event contract, loaded from YAML.

A mapping renames source columns to canonical names, translates raw event names into the
vocabulary, supplies constants (every CDNOW row is a ``purchase`` in ``USD``), states the zone of
naive timestamps and, for order-line logs, how lines become purchase and refund events.
A :class:`SourcesMapping` (a YAML file with ``sources:``) names several sources (order lines,
campaign receipts, offer redemptions, sign-ups), each with its own file and its own mapping,
that together make one canonical log.
Shipped mappings live in ``features/defaults/mappings``; nothing is read on import.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lifecycle.features.config import load_yaml
from lifecycle.features.schema import CUSTOMER_SCHEMA, EVENT_COLUMNS

CONSTANT_COLUMNS: tuple[str, ...] = ("event_type", "currency", "channel", "campaign_id")
"""Canonical columns that a mapping may fill with one value for every row."""

CUSTOMER_COLUMNS: tuple[str, ...] = tuple(CUSTOMER_SCHEMA.names)
"""Canonical columns of the optional customer table."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_timezone(value: str) -> str:
    """Reject zone names that the IANA database does not know."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as 'Europe/London')"
        ) from exc
    return value


class TransactionMapping(_Strict):
    """Order-line logs: how lines (one product of one order) become purchase and refund events.

    A line's value is ``amount_col`` when set (``quantity_col`` is then only checked), otherwise
    ``quantity_col * unit_price_col``. Lines of orders whose id starts with ``refund_prefix``
    become ``refund`` events with negative revenue (``-|value|``). A negative quantity, unit price
    or amount on a line of any other order is quarantined: the log does not say what it means.
    """

    order_id_col: str | None = None
    """Order (invoice) id; needed to merge by order and to recognise refunds."""
    quantity_col: str | None = None
    """Units on the line."""
    unit_price_col: str | None = None
    """Price of one unit."""
    amount_col: str | None = None
    """Value of the whole line; takes precedence over quantity * unit price."""
    refund_prefix: str | None = None
    """Orders whose id starts with this (Online Retail: ``C``) are refunds."""
    merge: Literal["order", "day", "none"] = "order"
    """One event per order, per customer and local calendar day (BTYD convention), or per line."""

    @model_validator(mode="after")
    def _consistent(self) -> TransactionMapping:
        problems = []
        if self.amount_col is None and (self.quantity_col is None or self.unit_price_col is None):
            problems.append("set amount_col, or both quantity_col and unit_price_col")
        if self.merge == "order" and self.order_id_col is None:
            problems.append("merge: order needs order_id_col")
        if self.refund_prefix is not None and self.order_id_col is None:
            problems.append("refund_prefix needs order_id_col")
        if self.refund_prefix == "":
            problems.append("refund_prefix must not be empty")
        if problems:
            raise ValueError("transactions: " + "; ".join(problems))
        return self


class EventMapping(_Strict):
    """How one source maps onto the canonical event columns.

    A canonical column comes from ``columns`` when mapped there, else from ``constants``, else
    from a source column of the same name. Required: ``customer_id``, ``event_ts`` and
    ``event_type``; ``revenue`` is optional (null when absent).

    Examples
    --------
    >>> m = EventMapping(columns={"customer_id": "user"}, constants={"event_type": "visit"})
    >>> m.timezone
    'UTC'
    """

    columns: dict[str, str] = Field(default_factory=dict)
    """Canonical column name -> source column name."""
    event_types: dict[str, str] = Field(default_factory=dict)
    """Raw event value -> vocabulary name; values not listed must already be vocabulary names."""
    constants: dict[str, str] = Field(default_factory=dict)
    """Canonical column -> one value for every row (``event_type``, ``currency``, ...)."""
    timezone: str = "UTC"
    """IANA zone of naive timestamps; aware timestamps keep their own offset."""
    timestamp_format: str | None = None
    """strptime format of the timestamp text; None parses ISO 8601 first, then leniently."""
    transactions: TransactionMapping | None = None
    """Set for order-line logs: lines are validated, then merged into events."""
    duplicates: Literal["quarantine", "keep"] = "quarantine"
    """Rows with the same ``duplicate_key``: quarantine all but the first, or keep them all
    (line files without a line id, such as CDNOW, hold genuine repeated lines)."""
    duplicate_key: tuple[str, ...] | None = None
    """Source columns whose values together define a duplicate (``[order_id, product]``);
    None: every source column, so rows count as duplicates only when identical throughout."""
    read: dict[str, Any] = Field(default_factory=dict)
    """Reader options passed to ``pandas.read_csv`` (``sep``, ``header``, ``names``, ...)."""

    @field_validator("columns")
    @classmethod
    def _canonical_keys(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(EVENT_COLUMNS))
        if unknown:
            raise ValueError(f"columns: {unknown} are not canonical columns {list(EVENT_COLUMNS)}")
        if any(not source for source in value.values()):
            raise ValueError("columns: a source column name is empty")
        return value

    @field_validator("constants")
    @classmethod
    def _constant_keys(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(CONSTANT_COLUMNS))
        if unknown:
            raise ValueError(
                f"constants: {unknown} cannot be constants; allowed: {CONSTANT_COLUMNS}"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("duplicate_key")
    @classmethod
    def _key(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not value or any(not name for name in value):
            raise ValueError("duplicate_key: list one or more source column names")
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate_key: {list(value)} names a column twice")
        return value

    @model_validator(mode="after")
    def _no_conflicts(self) -> EventMapping:
        both = sorted(set(self.columns) & set(self.constants))
        if both:
            raise ValueError(f"{both} are given both as a column and as a constant")
        if self.transactions is not None and ("revenue" in self.columns):
            raise ValueError(
                "with transactions, revenue comes from the line columns; drop columns.revenue"
            )
        return self


class SourceMapping(EventMapping):
    """One source of a :class:`SourcesMapping`: where its rows are, and how they map.

    Examples
    --------
    >>> SourceMapping(path="receipts.csv", constants={"event_type": "campaign_exposure"}).path
    'receipts.csv'
    """

    path: str
    """CSV/Parquet/DuckDB file or folder, or a SQLAlchemy URL. A relative path is relative to
    the mapping file's folder when loaded by :func:`load_mapping` (else to the working folder)."""
    table: str | None = None
    """Table to read when ``path`` is a database."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("path: empty")
        return value


class SourcesMapping(_Strict):
    """Several sources that together make one canonical log, each with its own mapping.

    Every source is read and validated on its own (only sources with ``transactions`` are
    treated as order lines); accepted events are then concatenated and sorted, quarantined rows
    keep the name of their source, and counts reconcile per source.

    Examples
    --------
    >>> m = SourcesMapping(sources={
    ...     "orders": {"path": "orders.csv", "constants": {"event_type": "purchase"}},
    ...     "signups": {"path": "signups.csv", "constants": {"event_type": "signup"}},
    ... })
    >>> list(m.sources)
    ['orders', 'signups']
    """

    sources: dict[str, SourceMapping]
    """Source name -> its file and mapping, in the order they are read."""

    @field_validator("sources")
    @classmethod
    def _named(cls, value: dict[str, SourceMapping]) -> dict[str, SourceMapping]:
        if not value:
            raise ValueError("sources: name at least one source")
        blank = [name for name in value if not str(name).strip()]
        if blank:
            raise ValueError("sources: a source name is empty")
        return value

    def resolved(self, folder: str | Path) -> SourcesMapping:
        """Return a copy whose relative paths are made absolute against ``folder``.

        URLs (``dialect://...``) and absolute paths are kept as they are.

        Parameters
        ----------
        folder
            Usually the folder of the mapping file.

        Returns
        -------
        SourcesMapping
            The same sources with absolute paths.
        """
        base = Path(folder)
        sources = {}
        for name, source in self.sources.items():
            path = source.path
            if "://" not in path and not Path(path).expanduser().is_absolute():
                path = str((base / path).resolve())
            elif "://" not in path:
                path = str(Path(path).expanduser())
            sources[name] = source.model_copy(update={"path": path})
        return self.model_copy(update={"sources": sources})


class CustomerMapping(_Strict):
    """How a customer table maps onto the canonical customer columns.

    The canonical columns are ``customer_id``, ``acquisition_channel``, ``country`` and
    ``signup_ts``; other columns are kept as they are.
    """

    columns: dict[str, str] = Field(default_factory=dict)
    """Canonical column name -> source column name."""
    timezone: str = "UTC"
    """IANA zone of naive ``signup_ts`` values."""
    timestamp_format: str | None = None
    """strptime format of ``signup_ts``; None parses ISO 8601 first, then leniently."""
    read: dict[str, Any] = Field(default_factory=dict)
    """Reader options passed to ``pandas.read_csv``."""

    @field_validator("columns")
    @classmethod
    def _canonical_keys(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(CUSTOMER_COLUMNS))
        if unknown:
            raise ValueError(
                f"columns: {unknown} are not customer columns {list(CUSTOMER_COLUMNS)}"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_timezone(value)


def _mappings_dir() -> Path:
    """Return the folder of shipped mapping files."""
    return Path(str(resources.files("lifecycle.features") / "defaults" / "mappings"))


def shipped_mappings() -> tuple[str, ...]:
    """Return the names of the mappings shipped with the package.

    Returns
    -------
    tuple of str
        Names accepted by :func:`load_mapping`, sorted.

    Examples
    --------
    >>> "cdnow" in shipped_mappings()
    True
    """
    return tuple(sorted(p.stem for p in _mappings_dir().glob("*.yaml")))


def names_sources(path: str | Path) -> bool:
    """Tell whether a file is a mapping YAML with ``sources:`` (a :class:`SourcesMapping`).

    Parameters
    ----------
    path
        Any path; files that are not YAML mappings (by suffix) answer False unread.

    Returns
    -------
    bool
        True when the file is ``.yaml``/``.yml`` and its top level has a ``sources`` key.
    """
    file = Path(path)
    if file.suffix.lower() not in (".yaml", ".yml") or not file.is_file():
        return False
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return False  # load_mapping reports the syntax error with the file name
    return isinstance(data, dict) and "sources" in data


def load_mapping(name_or_path: str | Path | None) -> EventMapping | SourcesMapping | None:
    """Load an event mapping by shipped name or from a YAML file.

    A YAML file whose top level has ``sources:`` gives a :class:`SourcesMapping`, with the
    sources' relative paths resolved against the file's folder.

    Parameters
    ----------
    name_or_path
        A shipped name (``"cdnow"``, ``"cdnow_sample"``, ``"online_retail"``), a path to a YAML
        file, or None.

    Returns
    -------
    EventMapping or SourcesMapping or None
        None when ``name_or_path`` is None (the source already uses canonical names).

    Raises
    ------
    FileNotFoundError
        When it is neither a shipped name nor an existing file.
    ValueError
        When the YAML is invalid or does not match :class:`EventMapping`.

    Examples
    --------
    >>> load_mapping("online_retail").transactions.refund_prefix
    'C'
    """
    if name_or_path is None:
        return None
    text = str(name_or_path)
    if text in shipped_mappings():
        return load_yaml(_mappings_dir() / f"{text}.yaml", EventMapping)
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"mapping {text!r} is neither a shipped mapping {list(shipped_mappings())} "
            "nor an existing YAML file"
        )
    if names_sources(path):
        return load_yaml(path, SourcesMapping).resolved(path.resolve().parent)
    return load_yaml(path, EventMapping)
