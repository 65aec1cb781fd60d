"""De-identified analytics export: one CSV row per member, for analysts.

Columns (``COLUMNS``), nothing else, header first:

    pseudonym             hex of HMAC-SHA256(key, utf8(account id))[:16]
    age_band              "0-9" .. "70-79", "80+", "unknown" (birth_date, as of now_us)
    region                ISO 3166 country of the phone number, "unknown"
    tier                  the member's tier (member_stats), "none"
    main_channel          channel of most of the member's journal entries, "none"
    recency_band          days since the member's last entry: 0-30, 31-90, 91-365, 365+, none
    frequency_band        matured purchases: 0, 1-2, 3-9, 10+
    monetary_band         matured spend in currency units: 0, 1-99, 100-999, 1000-9999, 10000+
    redemption_rate_band  redeemed / earned points: 0, 0-25%, 25-50%, 50-100%

Privacy rules:

- No direct identifier leaves: no account id, name, phone, e-mail, birth
  date or address, no exact date or amount. Only ``birth_date`` and
  ``phone`` are decrypted, in memory, to compute the two bands.
- ``key`` is ``link_key`` when the caller configures one (pseudonyms are
  then stable, so exports can be joined), else 32 fresh random bytes per
  export that are never written anywhere (two exports cannot be joined).
- k-anonymity over the quasi-identifiers (age_band, region, tier): a row
  whose group has fewer than ``k`` rows in the export is suppressed. The
  other columns are not quasi-identifiers here: someone who also knows a
  target's channel or RFM bands may narrow a group down (no l-diversity).
- Rows are written sorted by pseudonym: their order says nothing about
  account ids, and two unlinkable exports cannot be joined by position.
- A member whose data does not decrypt (no data key, a key or field that
  does not open) is suppressed and counted, never logged. Erased members
  (closed account, ``member_erasures``) are not read at all. A keyring that
  cannot be read at all (``KeyringError``) stops the export.

Definitions:

- Entries posted by the ledger itself (channels ``program``, ``erasure``:
  maturing, expiry, hold timeouts, referral rewards) are not the member's
  activity: they count for neither ``main_channel`` nor ``recency_band``.
  Ties for ``main_channel`` go to the smallest channel id.
- earned = points posted from ``program:issued`` or ``program:issued:<rule>``
  into the member's family (``mbr_X`` and its lots), redeemed = points
  posted from the family to ``program:redeemed``; both gross: refunds,
  reversed redemptions, transfers and partner exchanges are not netted. The
  rate is capped at 100% (a reversed redemption redeemed again counts
  twice); points redeemed with nothing earned (only transferred in) count
  as 50-100%.
- frequency and spend are the member's tier statistics (matured purchases
  only, docs/program-rules.md §5); spend in units of ``minor_per_unit``.

Memory is bounded: members are read in chunks of ``CHUNK`` (each chunk in
one read transaction; there is no snapshot across chunks, so a member
erased after their chunk was read is still in this export, not in the
next), rows are spilled to temporary files bucketed by pseudonym range (up
to 32 MB in memory over all buckets, on disk beyond; they hold the output
columns plus the member's exact earned and redeemed points, and are deleted
when the export ends), one bucket at a time is sorted in memory (about
50,000 rows; members / 256 beyond 12.8 million), and the only per-export
map is quasi-identifier group -> count. Suppression is decided over exactly
the rows spilled, so nothing that changes while the export runs (an
erasure, a key rotation) can leave a written group smaller than ``k``.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import hmac
import json
import secrets
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import phonenumbers
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from audit.accounts import owner_of
from audit.entry_format import PROGRAM_ISSUED, PROGRAM_REDEEMED
from ledger.keys.errors import DecryptionError
from ledger.members.vault import MemberVault, StoredKey
from ledger.program.config import TIERS
from ledger.program.tiers import Stats
from ledger.storage.database import Database
from ledger.storage.schema import (
    account_entries,
    accounts,
    journal_entries,
    journal_postings,
    member_erasures,
    member_fields,
    member_keys,
    member_stats,
)
from ledger.validation import RESERVED_CHANNELS

COLUMNS = (
    "pseudonym",
    "age_band",
    "region",
    "tier",
    "main_channel",
    "recency_band",
    "frequency_band",
    "monetary_band",
    "redemption_rate_band",
)
QUASI_IDENTIFIERS = ("age_band", "region", "tier")
UNKNOWN = "unknown"
NONE = "none"
AGE_BANDS = (*(f"{lo}-{lo + 9}" for lo in range(0, 80, 10)), "80+", UNKNOWN)
RECENCY_BANDS = ("0-30", "31-90", "91-365", "365+", NONE)
FREQUENCY_BANDS = ("0", "1-2", "3-9", "10+")
MONETARY_BANDS = ("0", "1-99", "100-999", "1000-9999", "10000+")
REDEMPTION_BANDS = ("0", "0-25%", "25-50%", "50-100%")
TIER_NAMES = (NONE, *TIERS)

CHUNK = 500  # members per read transaction
MIN_LINK_KEY = 32  # bytes, like every keyed secret of the ledger
PSEUDONYM_BYTES = 16
_BUCKET_ROWS = 50_000  # rows sorted in memory at a time (expected)
_MAX_BUCKETS = 256  # open temporary files at most
_SPOOL_BYTES = 32 * 1024 * 1024  # kept in memory, over all buckets, before spilling to disk
_DAY_US = 86_400_000_000
_WANTED = frozenset({"birth_date", "phone"})
_ISSUED_SUB = PROGRAM_ISSUED + ":"


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export wrote; every aggregate is over the written rows only."""

    members_seen: int  # non-erased members read
    rows_written: int
    rows_suppressed: int  # members_seen - rows_written (small groups and unreadable)
    unreadable: int  # of rows_suppressed: data that did not decrypt
    k: int
    groups: int  # quasi-identifier groups written (each has >= k rows)
    groups_suppressed: int  # groups smaller than k (unreadable members not included)
    linkable: bool  # pseudonyms from a configured link key
    by_tier: Mapping[str, int] = field(default_factory=dict)
    by_main_channel: Mapping[str, int] = field(default_factory=dict)
    by_recency: Mapping[str, int] = field(default_factory=dict)
    by_frequency: Mapping[str, int] = field(default_factory=dict)
    by_monetary: Mapping[str, int] = field(default_factory=dict)
    by_redemption_rate: Mapping[str, int] = field(default_factory=dict)
    redemption_rate: float | None = None  # redeemed / earned; None: nothing earned


def summary_json(summary: ExportSummary) -> str:
    """The summary as one JSON object (keys sorted)."""
    data: dict[str, object] = {
        "members_seen": summary.members_seen,
        "rows_written": summary.rows_written,
        "rows_suppressed": summary.rows_suppressed,
        "unreadable": summary.unreadable,
        "k": summary.k,
        "groups": summary.groups,
        "groups_suppressed": summary.groups_suppressed,
        "linkable": summary.linkable,
        "by_tier": dict(summary.by_tier),
        "by_main_channel": dict(summary.by_main_channel),
        "by_recency": dict(summary.by_recency),
        "by_frequency": dict(summary.by_frequency),
        "by_monetary": dict(summary.by_monetary),
        "by_redemption_rate": dict(summary.by_redemption_rate),
        "redemption_rate": summary.redemption_rate,
    }
    return json.dumps(data, sort_keys=True)


# -- bands ----------------------------------------------------------------------------


def age_band(birth_date: str | None, today: dt.date) -> str:
    if not birth_date:
        return UNKNOWN
    try:
        born = dt.date.fromisoformat(birth_date)
    except ValueError:
        return UNKNOWN
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if age < 0:
        return UNKNOWN
    if age >= 80:
        return "80+"
    low = age // 10 * 10
    return f"{low}-{low + 9}"


def region(phone: str | None, default_region: str) -> str:
    if not phone:
        return UNKNOWN
    try:
        number = phonenumbers.parse(phone, default_region)
    except phonenumbers.NumberParseException:
        return UNKNOWN
    code = phonenumbers.region_code_for_number(number)
    # None: no region; "001": a non-geographic number; "ZZ": unknown
    if not code or len(code) != 2 or not code.isalpha() or code == "ZZ":
        return UNKNOWN
    return str(code)


def recency_band(last_us: int | None, now_us: int) -> str:
    if last_us is None:
        return NONE
    days = max(0, now_us - last_us) // _DAY_US
    if days <= 30:
        return "0-30"
    if days <= 90:
        return "31-90"
    if days <= 365:
        return "91-365"
    return "365+"


def frequency_band(purchases: int) -> str:
    if purchases <= 0:
        return "0"
    if purchases <= 2:
        return "1-2"
    if purchases <= 9:
        return "3-9"
    return "10+"


def monetary_band(spend_minor: int, minor_per_unit: int) -> str:
    if spend_minor <= 0:
        return "0"
    units = spend_minor / minor_per_unit
    if units < 100:
        return "1-99"
    if units < 1_000:
        return "100-999"
    if units < 10_000:
        return "1000-9999"
    return "10000+"


def redemption_band(earned: int, redeemed: int) -> str:
    if redeemed <= 0:
        return "0"
    rate = 1.0 if earned <= 0 else min(1.0, redeemed / earned)
    if rate < 0.25:
        return "0-25%"
    if rate < 0.5:
        return "25-50%"
    return "50-100%"


def pseudonym(key: bytes, account: str) -> str:
    return hmac.new(key, account.encode(), hashlib.sha256).digest()[:PSEUDONYM_BYTES].hex()


# -- reading members in chunks ------------------------------------------------------------


@dataclass(slots=True)
class _Member:
    account: str
    keys: list[StoredKey] = field(default_factory=list)
    fields: dict[str, bytes] = field(default_factory=dict)
    stats: Stats | None = None
    channels: Counter[str] = field(default_factory=Counter)
    last_us: int | None = None
    earned: int = 0
    redeemed: int = 0


def _member_ids() -> sa.Select[str]:
    erased = sa.select(member_erasures.c.account_id).where(
        member_erasures.c.account_id == accounts.c.account_id
    )
    return sa.select(accounts.c.account_id).where(
        accounts.c.account_id == accounts.c.owner,
        accounts.c.account_id.like("mbr\\_%", escape="\\"),
        accounts.c.closed_us == 0,
        ~sa.exists(erased),
    )


def _count_members(db: Database) -> int:
    with db.reader.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(_member_ids().subquery()))
        return int(count.scalar_one())


def _load_chunk(conn: Connection, ids: Sequence[str]) -> list[_Member]:
    members = {account: _Member(account) for account in ids}
    for account, version, kek, wrapped in conn.execute(
        sa.select(
            member_keys.c.account_id,
            member_keys.c.dek_version,
            member_keys.c.kek_version,
            member_keys.c.wrapped,
        )
        .where(member_keys.c.account_id.in_(ids))
        .order_by(member_keys.c.account_id, member_keys.c.dek_version)
    ):
        members[account].keys.append(StoredKey(int(version), int(kek), bytes(wrapped)))
    for account, name, blob in conn.execute(
        sa.select(
            member_fields.c.account_id, member_fields.c.field, member_fields.c.ciphertext
        ).where(member_fields.c.account_id.in_(ids), member_fields.c.field.in_(sorted(_WANTED)))
    ):
        members[account].fields[name] = bytes(blob)
    for account, data in conn.execute(
        sa.select(member_stats.c.account_id, member_stats.c.data).where(
            member_stats.c.account_id.in_(ids)
        )
    ):
        members[account].stats = Stats.from_json(bytes(data))
    entries = account_entries.join(journal_entries, journal_entries.c.seq == account_entries.c.seq)
    for account, channel, count, last in conn.execute(
        sa.select(
            account_entries.c.account_id,
            journal_entries.c.channel_id,
            sa.func.count(),
            sa.func.max(journal_entries.c.time_us),
        )
        .select_from(entries)
        .where(
            account_entries.c.account_id.in_(ids),
            journal_entries.c.channel_id.not_in(sorted(RESERVED_CHANNELS)),
        )
        .group_by(account_entries.c.account_id, journal_entries.c.channel_id)
    ):
        member = members[account]
        member.channels[channel] = int(count)
        member.last_us = int(last) if member.last_us is None else max(member.last_us, int(last))
    postings = account_entries.join(
        journal_postings, journal_postings.c.seq == account_entries.c.seq
    )
    for account, source, target, points in conn.execute(
        sa.select(
            account_entries.c.account_id,
            journal_postings.c.from_account,
            journal_postings.c.to_account,
            sa.func.sum(journal_postings.c.points),
        )
        .select_from(postings)
        .where(
            account_entries.c.account_id.in_(ids),
            sa.or_(
                journal_postings.c.from_account.like(PROGRAM_ISSUED + "%"),
                journal_postings.c.to_account == PROGRAM_REDEEMED,
            ),
        )
        .group_by(
            account_entries.c.account_id,
            journal_postings.c.from_account,
            journal_postings.c.to_account,
        )
    ):
        member = members[account]
        issued = source == PROGRAM_ISSUED or source.startswith(_ISSUED_SUB)
        if issued and owner_of(target) == account:
            member.earned += int(points)
        elif target == PROGRAM_REDEEMED and owner_of(source) == account:
            member.redeemed += int(points)
    return [members[account] for account in ids]


def _chunks(db: Database) -> Iterator[list[_Member]]:
    after = ""
    while True:
        with db.reader.connect() as conn:
            if not db.is_sqlite:  # one snapshot for the chunk's queries (SQLite: BEGIN does it)
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                query = _member_ids().where(accounts.c.account_id > after)
                ids = list(
                    conn.execute(query.order_by(accounts.c.account_id).limit(CHUNK)).scalars()
                )
                if not ids:
                    return
                chunk = _load_chunk(conn, ids)
        yield chunk
        after = ids[-1]


# -- the export ---------------------------------------------------------------------------


def _row(
    member: _Member,
    plain: Mapping[str, str | None],
    key: bytes,
    today: dt.date,
    now_us: int,
    phone_region: str,
    minor_per_unit: int,
) -> list[str]:
    stats = member.stats or Stats()
    if member.channels:
        top = max(member.channels.values())
        channel = min(c for c, n in member.channels.items() if n == top)
    else:
        channel = NONE
    return [
        pseudonym(key, member.account),
        age_band(plain.get("birth_date"), today),
        region(plain.get("phone"), phone_region),
        stats.tier,
        channel,
        recency_band(member.last_us, now_us),
        frequency_band(stats.purchases),
        monetary_band(stats.spend_minor, minor_per_unit),
        redemption_band(member.earned, member.redeemed),
        str(member.earned),  # spill only: never written to ``out``
        str(member.redeemed),
    ]


def _plaintext(vault: MemberVault, member: _Member) -> Mapping[str, str | None] | None:
    """The member's birth date and phone; None when they do not decrypt."""
    if not member.keys:
        return None
    try:
        return vault.open(member.account, member.keys, member.fields, _WANTED)
    except DecryptionError:
        return None


def _zeros(names: Iterable[str]) -> dict[str, int]:
    return dict.fromkeys(names, 0)


def export_analytics(
    db: Database,
    vault: MemberVault,
    out: TextIO,
    *,
    k: int = 10,
    link_key: bytes | None = None,
    now_us: int,
    phone_region: str = "CN",
    minor_per_unit: int = 100,
) -> ExportSummary:
    """Write the de-identified CSV of every non-erased member to ``out``
    (see the module docstring) and return what was written, with the
    aggregates. ``minor_per_unit`` is the program's ``[earn] minor_per_unit``."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError("k: must be an integer of at least 2")
    if link_key is not None and len(link_key) < MIN_LINK_KEY:
        raise ValueError(f"link_key: must be at least {MIN_LINK_KEY} bytes")
    if minor_per_unit < 1:
        raise ValueError("minor_per_unit: must be at least 1")
    key = link_key if link_key is not None else secrets.token_bytes(32)
    today = dt.datetime.fromtimestamp(now_us / 1_000_000, tz=dt.UTC).date()
    buckets_n = min(_MAX_BUCKETS, max(1, -(-_count_members(db) // _BUCKET_ROWS)))
    with contextlib.ExitStack() as stack:
        buckets = [
            stack.enter_context(
                tempfile.SpooledTemporaryFile(
                    max_size=_SPOOL_BYTES // buckets_n, mode="w+", encoding="utf-8", newline=""
                )
            )
            for _ in range(buckets_n)
        ]
        spill = [csv.writer(b, lineterminator="\n") for b in buckets]
        groups: Counter[tuple[str, ...]] = Counter()
        seen = unreadable = 0
        for chunk in _chunks(db):
            for member in chunk:
                seen += 1
                plain = _plaintext(vault, member)
                if plain is None:
                    unreadable += 1
                    continue
                row = _row(member, plain, key, today, now_us, phone_region, minor_per_unit)
                groups[(row[1], row[2], row[3])] += 1
                # contiguous pseudonym ranges: sorted buckets, in order, are sorted rows
                spill[int(row[0][:4], 16) * buckets_n >> 16].writerow(row)
        return _write(
            buckets,
            groups,
            out,
            k=k,
            seen=seen,
            unreadable=unreadable,
            linkable=link_key is not None,
        )


def _write(
    buckets: Sequence[tempfile.SpooledTemporaryFile[str]],
    groups: Mapping[tuple[str, ...], int],
    out: TextIO,
    *,
    k: int,
    seen: int,
    unreadable: int,
    linkable: bool,
) -> ExportSummary:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    width = len(COLUMNS)
    tiers, channels = _zeros(TIER_NAMES), Counter[str]()
    recency, frequency = _zeros(RECENCY_BANDS), _zeros(FREQUENCY_BANDS)
    monetary, redemption = _zeros(MONETARY_BANDS), _zeros(REDEMPTION_BANDS)
    written = earned = redeemed = 0
    for bucket in buckets:
        bucket.seek(0)
        rows = [r for r in csv.reader(bucket) if groups[(r[1], r[2], r[3])] >= k]
        rows.sort(key=lambda r: r[0])
        for row in rows:
            writer.writerow(row[:width])
            written += 1
            tiers[row[3]] = tiers.get(row[3], 0) + 1
            channels[row[4]] += 1
            recency[row[5]] += 1
            frequency[row[6]] += 1
            monetary[row[7]] += 1
            redemption[row[8]] += 1
            earned += int(row[9])
            redeemed += int(row[10])
        del rows
    return ExportSummary(
        members_seen=seen,
        rows_written=written,
        rows_suppressed=seen - written,
        unreadable=unreadable,
        k=k,
        groups=sum(1 for n in groups.values() if n >= k),
        groups_suppressed=sum(1 for n in groups.values() if n < k),
        linkable=linkable,
        by_tier=tiers,
        by_main_channel=dict(sorted(channels.items())),
        by_recency=recency,
        by_frequency=frequency,
        by_monetary=monetary,
        by_redemption_rate=redemption,
        redemption_rate=round(redeemed / earned, 4) if earned else None,
    )
