"""The data inventory: every stored field, why it is kept, who may see it,
how long it is kept. ``loyalty-ledger minimization report`` prints it from
this table and the live permission table; docs/data-inventory.md is that
output, and a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from access.permissions import PERMISSIONS
from access.purposes import PURPOSES, Show

SERVICES = {
    "LedgerService": "/loyalty.ledger.v1.LedgerService/",
    "MemberService": "/loyalty.members.v1.MemberService/",
    "AccessService": "/loyalty.access.v1.AccessService/",
    "AuditService": "/loyalty.audit.v1.AuditService/",
    "RewardService": "/loyalty.rewards.v1.RewardService/",
}
FOREVER = "kept forever (append-only)"
UNTIL_ERASED = "until the member is erased (deleted; the data key is destroyed)"
STANDARD_MEMBER_FIELDS = ("name", "phone", "email", "birth_date", "postal_address")


@dataclass(frozen=True, slots=True)
class StoredField:
    table: str
    field: str
    personal: str  # "no", or why it could identify a person
    purpose: str
    read_by: tuple[str, ...]  # RPCs that return it
    retention: str


INVENTORY: tuple[StoredField, ...] = (
    StoredField(
        "accounts",
        "account_id",
        "pseudonym: random, links a member's entries",
        "address the member's points",
        ("LedgerService/GetBalance", "LedgerService/ListEntries"),
        FOREVER,
    ),
    StoredField(
        "accounts",
        "balance",
        "no (points)",
        "materialized balance",
        ("LedgerService/GetBalance",),
        "rewritten on every entry",
    ),
    StoredField(
        "journal_entries",
        "seq, time_us, kind, prev_hash, hash",
        "no",
        "the hash chain",
        ("LedgerService/GetEntry", "LedgerService/ListEntries"),
        FOREVER,
    ),
    StoredField(
        "journal_entries",
        "channel_id",
        "no (a system)",
        "omni-channel audit: which system made the entry",
        ("LedgerService/GetEntry", "LedgerService/ListEntries"),
        FOREVER,
    ),
    StoredField(
        "journal_entries",
        "details.store_id",
        "behavioural: where a member shops",
        "reconcile with the store",
        ("LedgerService/GetEntry", "LedgerService/ListEntries"),
        FOREVER + "; unreadable once the member is erased (crypto-shredding)",
    ),
    StoredField(
        "journal_entries",
        "details.external_transaction_id",
        "behavioural: links to the order system",
        "reconcile with the order",
        ("LedgerService/GetEntry", "LedgerService/ListEntries"),
        FOREVER + "; unreadable once the member is erased (crypto-shredding)",
    ),
    StoredField(
        "journal_entries",
        "details.purchase",
        "behavioural: what a member spends",
        "explain points earned on a purchase",
        ("LedgerService/GetEntry", "LedgerService/ListEntries"),
        FOREVER + "; unreadable once the member is erased (crypto-shredding)",
    ),
    StoredField(
        "journal_entries",
        "details of a profile entry",
        "no (field names and SHA-256 digests of random-nonce ciphertexts)",
        "profile freshness: which ciphertext of each field is current",
        ("LedgerService/GetEntry",),
        FOREVER + " (outlives erasure: the ciphertexts and keys are gone)",
    ),
    StoredField(
        "journal_postings",
        "from_account, to_account, points",
        "pseudonymous (account ids)",
        "double-entry postings",
        ("LedgerService/GetEntry", "LedgerService/ListEntries"),
        FOREVER,
    ),
    StoredField(
        "account_entries",
        "account_id, seq",
        "pseudonymous",
        "a member's history index",
        ("LedgerService/ListEntries",),
        FOREVER,
    ),
    StoredField(
        "idempotency_keys",
        "channel_id, idempotency_key, fingerprint, response",
        "no (the key and the request's fingerprint as keyed HMAC-SHA256 digests, so a "
        "phone number sent as a key is never stored; the response)",
        "exactly-once retries",
        (),
        "kept forever for now; expiry is open",
    ),
    StoredField(
        "access_log",
        "seq, time_us, request_id, principal, role, method, decision, reason, purpose, "
        "member_account_id, fields, prev_hash, hash",
        "pseudonymous (ids; field names, never values)",
        "who did what, for which purpose: the verifiable access log (security, compliance)",
        ("AuditService/GetEntries",),
        FOREVER,
    ),
    StoredField(
        "access_decisions",
        "as access_log, without the chain",
        "pseudonymous (ids; field names, never values)",
        "records made before the access log existed; copied into access_log, frozen",
        (),
        FOREVER,
    ),
    StoredField(
        "merkle_nodes",
        "log, level, idx, hash",
        "no (hashes of entries and of hashes)",
        "the Merkle trees of both logs: roots and proofs in O(log n)",
        ("AuditService/GetInclusionProof", "AuditService/GetConsistencyProof"),
        FOREVER,
    ),
    StoredField(
        "done_tasks",
        "name, done_us",
        "no",
        "one-off maintenance finished, so start-up does not repeat it",
        (),
        "kept as long as the database",
    ),
    StoredField(
        "checkpoints",
        "log, size, root, note, created_us",
        "no (signed tree heads)",
        "signed checkpoints, for compliance and witnesses",
        ("AuditService/GetCheckpoint",),
        FOREVER,
    ),
    StoredField(
        "cosignatures",
        "log, size, witness, line, created_us",
        "no (witnesses' cosignatures of checkpoints)",
        "evidence that a second party saw the same history (audit export)",
        (),
        FOREVER,
    ),
    StoredField(
        "profile_commitments",
        "account_id, seq",
        "pseudonymous (account id, sequence)",
        "index of the journal's profile entries, which commit to the digests of a member's"
        " field ciphertexts (profile freshness)",
        (),
        FOREVER,
    ),
    StoredField(
        "accounts",
        "closed_us",
        "no",
        "an erased member's account takes no more entries",
        (),
        FOREVER,
    ),
    StoredField(
        "accounts",
        "owner, expires_us, matures_us, due_us",
        "no (a lot's member id and when its points mature and expire)",
        "lots, pending points and expiry (docs/program-rules.md)",
        ("LedgerService/GetBalance", "LedgerService/GetLiability"),
        FOREVER,
    ),
    StoredField(
        "holds",
        "seq, owner, expires_us, channel_id",
        "no (a hold's timeout)",
        "release holds that time out",
        (),
        FOREVER,
    ),
    StoredField(
        "hold_ends",
        "seq, end_seq",
        "no",
        "a hold resolves once",
        (),
        FOREVER,
    ),
    StoredField(
        "vouchers",
        "seq, owner, reward_id, valid_until_us, channel_id",
        "pseudonymous: which reward a member's random account id claimed, and where"
        " (the code itself is never stored; it is derived from seq with a keyed MAC)",
        "redeem a voucher once in any channel; expire it; list a member's vouchers",
        ("RewardService/GetVoucher", "RewardService/ListVouchers"),
        FOREVER,
    ),
    StoredField(
        "voucher_ends",
        "seq, end_seq, state",
        "no",
        "a voucher ends once (redeemed, expired or cancelled)",
        ("RewardService/GetVoucher", "RewardService/ListVouchers"),
        FOREVER,
    ),
    StoredField(
        "reward_stock",
        "reward_id, taken",
        "no (a count per reward)",
        "never oversell a reward's stock",
        ("RewardService/ListRewards",),
        FOREVER,
    ),
    StoredField(
        "member_activity",
        "account_id, category, last_us",
        "behavioural: when the member last bought in a product category",
        "follow-up rewards (a bonus within a window after a qualifying purchase)",
        (),
        UNTIL_ERASED,
    ),
    StoredField(
        "member_stats",
        "account_id, data, review_us",
        "behavioural: counts of matured purchases per month, total spend, referrals, tier",
        "tiers on the growth ladder; referral rewards",
        ("LedgerService/GetTier",),
        UNTIL_ERASED,
    ),
    StoredField(
        "tier_changes",
        "account_id, idx, time_us, from_tier, to_tier, reason",
        "pseudonymous: a member's tier history under the random account id",
        "tier history a member can be shown",
        ("LedgerService/GetTier",),
        FOREVER,
    ),
    StoredField(
        "referrals",
        "referred, referrer, device_token, created_us",
        "pseudonymous: who referred whom; the device only as a 32-bit keyed token",
        "referral rewards and anti-abuse caps (per referrer, per device)",
        (),
        FOREVER,
    ),
    StoredField(
        "referral_refusals",
        "id, referrer, referred, reason, time_us",
        "pseudonymous: refused referrals and why",
        "fraud review by security",
        (),
        FOREVER,
    ),
    StoredField(
        "member_keys",
        "account_id, dek_version, kek_version, wrapped",
        "no (a data key, wrapped by a key-encryption key kept outside the database)",
        "decrypt the member's fields and journal details",
        (),
        UNTIL_ERASED + "; rewrapped on KEK rotation",
    ),
    StoredField(
        "member_lookup",
        "kind, token, account_id",
        "pseudonymous: 32-bit keyed HMAC of the phone / e-mail, shared by several people",
        "find a member by phone or e-mail at a till",
        ("MemberService/FindMember",),
        UNTIL_ERASED,
    ),
    StoredField(
        "member_erasures",
        "account_id, erased_us, reason, forfeit_seq, kek_version",
        "no (the record that an erasure happened, without what was erased)",
        "prove erasures to compliance",
        (),
        FOREVER,
    ),
    StoredField(
        "break_glass_grants",
        "grant_id, grantee, granted_by, reason, starts_us, expires_us",
        "no (principal ids; the reason is scanned for personal data)",
        "emergency elevation, reviewed by security",
        ("AccessService/ListBreakGlass",),
        FOREVER,
    ),
    StoredField(
        "break_glass_ends",
        "grant_id, ended_us, ended_by",
        "no (principal ids)",
        "when and by whom an elevation ended",
        ("AccessService/ListBreakGlass",),
        FOREVER,
    ),
)


def member_fields(custom: Iterable[str] = ()) -> tuple[StoredField, ...]:
    """One row per personal field (member_fields.ciphertext), with the
    purposes that show it: the live configuration's custom fields too."""
    rows = []
    for name in (*STANDARD_MEMBER_FIELDS, *sorted(custom)):
        shown = []
        for purpose in PURPOSES.values():
            show = purpose.show(name)
            if show is not None:
                how = " masked" if show is Show.MASKED else ""
                shown.append(f"{purpose.name}{how}")
        rows.append(
            StoredField(
                "member_fields",
                f"{name} (AES-256-GCM under the member's key)",
                "yes" if name in STANDARD_MEMBER_FIELDS else "yes (configured by the program)",
                "purposes: " + ", ".join(shown),
                ("MemberService/GetMember",),
                UNTIL_ERASED,
            )
        )
    return tuple(rows)


def _roles(rpc: str) -> list[str]:
    service, _, method = rpc.partition("/")
    return sorted(r.value for r in PERMISSIONS.get(SERVICES[service] + method, frozenset()))


def report(custom_fields: Iterable[str] = ()) -> str:
    """The inventory as Markdown, roles read from the live permission table
    and the purpose registry, custom member fields from the configuration."""
    lines = [
        "# Data inventory",
        "",
        "Generated by `loyalty-ledger minimization report` from `access/inventory.py`",
        "and the permission table in `access/permissions.py`. Do not edit by hand.",
        "",
        "Personal data lives in one place, `member_fields`, one AES-256-GCM",
        "ciphertext per field under the member's own data key; it is read only",
        "for a declared purpose (`access/purposes.py`), which shows some fields",
        "in full, some masked, and withholds the rest. Everything else knows a",
        "member only by a random account id. Store and order ids that look like",
        "personal data (card, PRC resident ID, IBAN, e-mail, phone) are refused",
        "at ingest (`access/detectors.py`); a request id that looks like one is",
        "replaced by the server's own before it reaches the access log, and",
        "idempotency keys are stored only as keyed digests. The detectors cannot",
        "recognise a name: a name typed into a store id, an order id, a request",
        "id or a break-glass reason is stored as typed (the reason in the access",
        "log, forever). Channels and staff are told so in the README.",
        "",
        "| table | field | personal? | purpose | returned by (roles) | retention |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in (*INVENTORY, *member_fields(custom_fields)):
        readers = "; ".join(f"{rpc} ({', '.join(_roles(rpc)) or 'nobody'})" for rpc in f.read_by)
        cells = (f.table, f.field, f.personal, f.purpose, readers or "no RPC", f.retention)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
