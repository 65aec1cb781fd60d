"""Table definitions (SQLAlchemy Core), shared by queries and tests.

The migrations in ledger/storage/migrations create and upgrade these tables;
this module describes the current shape for queries. Append-only tables
(refused UPDATE and DELETE by triggers): journal_entries, journal_postings,
account_entries, idempotency_keys. Mutable, and derived from the journal:
accounts (materialized balances) and journal_head (the chain's tip, also the
lock every writer takes).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

APPEND_ONLY_TABLES = (
    "journal_entries",
    "journal_postings",
    "account_entries",
    "idempotency_keys",
    "access_decisions",
    "member_erasures",
    "break_glass_grants",
    "break_glass_ends",
    "merkle_nodes",
    "access_log",
    "checkpoints",
    "holds",
    "hold_ends",
    "tier_changes",
    "referrals",
    "referral_refusals",
    "cosignatures",
    "profile_commitments",
    "vouchers",
    "voucher_ends",
)
# derived counters, rewritten as the journal grows
COUNTER_TABLES = ("reward_stock",)
# personal data must be erasable: these change and lose rows (0004)
MEMBER_TABLES = (
    "member_keys",
    "member_fields",
    "member_lookup",
    "member_activity",
    "member_stats",
)
# derived heads, rewritten on every append
HEAD_TABLES = ("journal_head", "access_head")

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("balance", sa.BigInteger, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),  # last entry touching it
    sa.Column("opened_us", sa.BigInteger, nullable=False),  # microseconds since epoch
    sa.Column("closed_us", sa.BigInteger, nullable=False, server_default="0"),  # 0: open
    # 0009: member sub-accounts (lots) carry their owner and their lot's terms
    sa.Column("owner", sa.String(64), nullable=False, server_default=""),
    sa.Column("expires_us", sa.BigInteger, nullable=False, server_default="0"),  # 0: never
    sa.Column("matures_us", sa.BigInteger, nullable=False, server_default="0"),  # 0: at once
    sa.Column("due_us", sa.BigInteger, nullable=False, server_default="0"),  # sweeper: look then
)
sa.Index("ix_accounts_owner", accounts.c.owner)
sa.Index("ix_accounts_due", accounts.c.due_us)

holds = sa.Table(
    "holds",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("expires_us", sa.BigInteger, nullable=False),
    sa.Column("channel_id", sa.String(64), nullable=False),
)
sa.Index("ix_holds_owner", holds.c.owner)
sa.Index("ix_holds_expires", holds.c.expires_us)

hold_ends = sa.Table(
    "hold_ends",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("end_seq", sa.BigInteger, nullable=False),
)

# docs/program-rules.md §11: a voucher per claim of a reward (its issue
# entry's sequence), how it ended (once: the primary key), and how many of
# each reward's vouchers are taken (issued and not cancelled or expired)
vouchers = sa.Table(
    "vouchers",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("reward_id", sa.String(40), nullable=False),
    sa.Column("valid_until_us", sa.BigInteger, nullable=False),
    sa.Column("channel_id", sa.String(64), nullable=False),
)
sa.Index("ix_vouchers_owner", vouchers.c.owner)
sa.Index("ix_vouchers_valid_until", vouchers.c.valid_until_us)

voucher_ends = sa.Table(
    "voucher_ends",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("end_seq", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
)

reward_stock = sa.Table(
    "reward_stock",
    metadata,
    sa.Column("reward_id", sa.String(40), primary_key=True),
    sa.Column("taken", sa.BigInteger, nullable=False),
)

member_activity = sa.Table(
    "member_activity",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("category", sa.String(40), primary_key=True),
    sa.Column("last_us", sa.BigInteger, nullable=False),
)

journal_head = sa.Table(
    "journal_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # always 1
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
    sa.Column("time_us", sa.BigInteger, nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),  # erasures
)

journal_entries = sa.Table(
    "journal_entries",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("time_us", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("channel_id", sa.String(64), nullable=False),
    sa.Column("reverses", sa.BigInteger, nullable=False),
    sa.Column("details", sa.LargeBinary, nullable=False),
    sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
    # 0013: the request's keyed digest (entry format v2); NULL: none (v1)
    sa.Column("request", sa.LargeBinary(16), nullable=True),
)
sa.Index("ux_journal_entries_request", journal_entries.c.request, unique=True)

journal_postings = sa.Table(
    "journal_postings",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("from_account", sa.String(64), nullable=False),
    sa.Column("to_account", sa.String(64), nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
)

account_entries = sa.Table(
    "account_entries",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("channel_id", sa.String(64), primary_key=True),
    sa.Column("idempotency_key", sa.String(128), primary_key=True),
    sa.Column("fingerprint", sa.LargeBinary(32), nullable=False),
    sa.Column("response", sa.LargeBinary, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=True),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)

sa.Index("ix_journal_entries_reverses", journal_entries.c.reverses)

access_decisions = sa.Table(
    "access_decisions",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.Identity(), primary_key=True
    ),
    sa.Column("time_us", sa.BigInteger, nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("principal", sa.String(128), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("method", sa.String(128), nullable=False),
    sa.Column("decision", sa.String(8), nullable=False),
    sa.Column("reason", sa.String(256), nullable=False),
    sa.Column("purpose", sa.String(64), nullable=False),
    sa.Column("member_account_id", sa.String(64), nullable=False),
    sa.Column("fields", sa.String(512), nullable=False),
)
sa.Index("ix_access_decisions_time", access_decisions.c.time_us)

member_keys = sa.Table(
    "member_keys",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("dek_version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kek_version", sa.Integer, nullable=False),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)
sa.Index("ix_member_keys_kek_version", member_keys.c.kek_version)

member_fields = sa.Table(
    "member_fields",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("field", sa.String(32), primary_key=True),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
)

member_lookup = sa.Table(
    "member_lookup",
    metadata,
    sa.Column("kind", sa.String(8), primary_key=True),
    sa.Column("token", sa.LargeBinary(16), primary_key=True),
    sa.Column("account_id", sa.String(64), primary_key=True),
)
sa.Index("ix_member_lookup_account", member_lookup.c.account_id)

member_erasures = sa.Table(
    "member_erasures",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("erased_us", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("forfeit_seq", sa.BigInteger, nullable=True),
    # 0011: newest KEK version that wrapped one of the member's data keys
    sa.Column("kek_version", sa.Integer, nullable=True),
)

break_glass_grants = sa.Table(
    "break_glass_grants",
    metadata,
    sa.Column("grant_id", sa.String(32), primary_key=True),
    sa.Column("grantee", sa.String(128), nullable=False),
    sa.Column("granted_by", sa.String(128), nullable=False),
    sa.Column("reason", sa.String(256), nullable=False),
    sa.Column("starts_us", sa.BigInteger, nullable=False),
    sa.Column("expires_us", sa.BigInteger, nullable=False),
)

break_glass_ends = sa.Table(
    "break_glass_ends",
    metadata,
    sa.Column("grant_id", sa.String(32), primary_key=True),
    sa.Column("ended_us", sa.BigInteger, nullable=False),
    sa.Column("ended_by", sa.String(128), nullable=False),
)

# -- verifiable logs (0006) -------------------------------------------------------

merkle_nodes = sa.Table(
    "merkle_nodes",
    metadata,
    sa.Column("log", sa.SmallInteger, primary_key=True, autoincrement=False),  # 1 journal, 2 access
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

access_log = sa.Table(
    "access_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("time_us", sa.BigInteger, nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("principal", sa.String(128), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("method", sa.String(128), nullable=False),
    sa.Column("decision", sa.String(8), nullable=False),
    sa.Column("reason", sa.String(256), nullable=False),
    sa.Column("purpose", sa.String(64), nullable=False),
    sa.Column("member_account_id", sa.String(64), nullable=False),
    sa.Column("fields", sa.String(512), nullable=False),
    sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)
sa.Index("ix_access_log_time", access_log.c.time_us)

access_head = sa.Table(
    "access_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # always 1
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
    sa.Column("time_us", sa.BigInteger, nullable=False),
)

checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("log", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("root", sa.LargeBinary(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)

cosignatures = sa.Table(  # 0014: witnesses' cosignatures of checkpoints
    "cosignatures",
    metadata,
    sa.Column("log", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("witness", sa.String(128), primary_key=True),
    sa.Column("line", sa.Text, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)

profile_commitments = sa.Table(  # 0015: which journal entries commit members' fields
    "profile_commitments",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
)

done_tasks = sa.Table(
    "done_tasks",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),  # e.g. "data-key-backfill"
    sa.Column("done_us", sa.BigInteger, nullable=False),
)

# -- tiers and referrals (0010) ---------------------------------------------------

member_stats = sa.Table(
    "member_stats",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("review_us", sa.BigInteger, nullable=False, server_default="0"),
)
sa.Index("ix_member_stats_review", member_stats.c.review_us)

tier_changes = sa.Table(
    "tier_changes",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("time_us", sa.BigInteger, nullable=False),
    sa.Column("from_tier", sa.String(16), nullable=False),
    sa.Column("to_tier", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),
)

referrals = sa.Table(
    "referrals",
    metadata,
    sa.Column("referred", sa.String(64), primary_key=True),
    sa.Column("referrer", sa.String(64), nullable=False),
    sa.Column("device_token", sa.LargeBinary(16), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)
sa.Index("ix_referrals_referrer", referrals.c.referrer, referrals.c.created_us)
sa.Index("ix_referrals_device", referrals.c.device_token, referrals.c.created_us)

referral_refusals = sa.Table(
    "referral_refusals",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.Identity(), primary_key=True
    ),
    sa.Column("referrer", sa.String(64), nullable=False),
    sa.Column("referred", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("time_us", sa.BigInteger, nullable=False),
)
