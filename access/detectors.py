"""Detectors of personal data in free text: pure functions, no I/O.

Used at ingest (data minimization): a free-text or metadata field that looks
like it carries personal data is refused, naming the field and the detector,
never the value. ``scan`` lists the detectors that fired; ``check_free_text``
raises ``PersonalDataFound`` for the first one.

Detectors, in the fixed order they run and are reported, and what is a hit:

- ``email``: ``local@domain.tld`` (dot-atom local part; domain labels of
  letters, digits and '-'; a TLD of 2+ letters or ``xn--`` punycode). Unicode
  letters count, so internationalized addresses are caught too.
- ``payment_card``: 13-19 digits, written whole or in groups of 3+ digits
  joined by single spaces or dashes, that pass the Luhn check AND start with
  an issuer prefix of a major scheme (Visa, Mastercard, Amex, Discover,
  UnionPay, JCB, Diners) at a length that scheme issues.
- ``prc_resident_id``: 17 digits + a digit or X (optionally grouped 6-8-4 by
  single spaces) that ``stdnum.cn.ric`` accepts: ISO 7064 MOD 11-2 check
  digit, a real calendar birth date, a known division code.
- ``iban``: two letters, two digits, then 11-30 letters or digits, written
  whole or in groups joined by single spaces, that ``stdnum.iban`` accepts:
  ISO 7064 MOD 97-10 check and the country's BBAN layout.
- ``phone``: what ``phonenumbers.PhoneNumberMatcher`` finds at leniency VALID
  and ``is_valid_number`` confirms, counted only when it is unambiguous:
  international form (``+86 ...``, ``0086 ...``, ``86 138...`` for a mobile),
  a national number written with its trunk prefix (``010 6552 9988``), or a
  mobile number of 11+ digits (a mainland mobile, ``13800138000``).

Full-width forms (U+FF01-U+FF5E: digits, letters, '@'), as Chinese input
methods type them, are folded to ASCII first. Numbers must stand apart from
ASCII letters and digits (``ORD4111111111111111`` is an id, not a card); CJK
text around them counts as a separator.

Known limits, false positives (a legitimate value refused):
- an 11-digit number starting 13-19 is a plausible mainland mobile; about 5%
  of random 11-digit ids are refused as ``phone``;
- a 13-19 digit id with a card prefix passes Luhn 1 time in 10; about 2.5% of
  random 16-digit ids are refused as ``payment_card``;
- an 18-digit id with a real date, a known division code and a matching check
  digit is a ``prc_resident_id`` (birth dates in the future are not refused).
Known limits, false negatives (personal data let through):
- e-mails obfuscated ("jane at example dot com") or with IP-literal domains;
- numbers of other regions in national form (a US "202-555-0143" without
  "+1"); Hong Kong and Macau numbers without "+852"/"+853" (their 8-digit
  national numbers would match half of all 8-digit ids); mainland fixed lines
  without the leading 0; digits spelled out or split by other characters;
- card numbers in groups of 1-2 digits, or of schemes outside the table
  (Maestro, Mir, RuPay); 15-digit first-generation PRC IDs; division codes
  newer than python-stdnum's table; IBANs split by anything but single spaces;
- anything in another field, an image, or split across fields.
Values over ``MAX_SCAN_CHARS`` characters are refused, not scanned. Values
with no '@' and fewer than ``MIN_DIGITS_TO_SCAN`` digits are not run through
the matchers at all (no detector can fire on them; the phone matcher alone
costs about 0.1 ms per value).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import phonenumbers
from stdnum import iban, luhn
from stdnum.cn import ric

from access.errors import AccessError

MIN_DIGITS_TO_SCAN = 6  # every phone, card, ID and IBAN has more digits than this

__all__ = [
    "DETECTOR_NAMES",
    "MAX_SCAN_CHARS",
    "PHONE_REGIONS",
    "DetectorName",
    "Finding",
    "PersonalDataFound",
    "TooLongToScan",
    "check_free_text",
    "scan",
]

DetectorName = Literal["email", "phone", "payment_card", "prc_resident_id", "iban"]

MAX_SCAN_CHARS = 4096  # longer values are refused: work must stay bounded

# full-width ASCII (U+FF01-U+FF5E), the ideographic and the no-break space, folded to ASCII
_FULLWIDTH_TO_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {
    0x3000: 0x20,
    0x00A0: 0x20,
}

# runs of ASCII letters and digits: the units numbers are assembled from
_TOKEN_RE = re.compile(r"[A-Za-z0-9]+")

_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_EMAIL_RE = re.compile(
    rf"(?<![\w!#$%&'*+/=?^`{{|}}~.-]){_ATOM}(?:\.{_ATOM})*"
    rf"@(?:{_LABEL}\.)+(?:[^\W\d_]{{2,63}}|xn--[A-Za-z0-9-]{{1,59}})(?![A-Za-z0-9-])"
)

# National-format numbers are read as numbers of these regions ("+" and "00"
# forms are caught for every region). Not HK/MO: 8-digit national numbers
# without a trunk prefix, valid for about 58% / 15% of random 8-digit ids.
PHONE_REGIONS = ("CN",)
_PHONE_MOBILE_NSN_MIN = 11  # a mobile without trunk prefix needs this many digits
_PHONE_MOBILE_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)
_PHONE_INTERNATIONAL_SOURCES = frozenset(
    {
        phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_PLUS_SIGN,
        phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_IDD,
    }
)

CARD_DIGITS_MIN, CARD_DIGITS_MAX = 13, 19
CARD_GROUP_MIN = 3  # "4111 1111 1111 1111", "3782 822463 10005", "6212 ... 567"
CARD_SEPARATORS = " -"
_ANY = range(16, 20)
# (lowest prefix, highest prefix, lengths issued); prefixes compared as numbers
CARD_ISSUER_RANGES: tuple[tuple[str, str, range], ...] = (
    ("4", "4", range(13, 20, 3)),  # Visa: 13, 16, 19
    ("51", "55", range(16, 17)),  # Mastercard
    ("2221", "2720", range(16, 17)),  # Mastercard 2-series
    ("34", "34", range(15, 16)),  # American Express
    ("37", "37", range(15, 16)),  # American Express
    ("6011", "6011", _ANY),  # Discover
    ("644", "649", _ANY),  # Discover
    ("65", "65", _ANY),  # Discover
    ("62", "62", _ANY),  # UnionPay (and Discover co-branded 622126-622925)
    ("3528", "3589", _ANY),  # JCB
    ("300", "305", range(14, 20)),  # Diners Club
    ("36", "36", range(14, 20)),  # Diners Club
    ("38", "39", range(16, 20)),  # Diners Club
)

PRC_ID_CHARS = 18
_PRC_ID_RE = re.compile(r"[0-9]{17}[0-9Xx]")

IBAN_CHARS_MIN, IBAN_CHARS_MAX = 15, 34
_IBAN_RE = re.compile(r"[A-Za-z]{2}[0-9]{2}[A-Za-z0-9]{11,30}")


@dataclass(frozen=True)
class Finding:
    """A detector fired. Carries its name only, never what it matched."""

    detector: DetectorName


class PersonalDataFound(AccessError):
    """A free-text field looks like it carries personal data (INVALID_ARGUMENT)."""

    def __init__(self, field: str, detector: str) -> None:
        self.field = field
        self.detector = detector
        self.rule = f"looks like personal data ({detector}); personal data is not accepted here"
        super().__init__(f"{field}: {self.rule}")


class TooLongToScan(AccessError, ValueError):
    """A value is longer than the detectors will scan (INVALID_ARGUMENT)."""

    def __init__(self, field: str, length: int) -> None:
        self.field = field
        self.rule = (
            f"too long to scan for personal data: "
            f"expected at most {MAX_SCAN_CHARS} characters, got {length}"
        )
        super().__init__(f"{field}: {self.rule}")


def _chains(text: str, separators: str, keep: Callable[[str], bool]) -> Iterator[list[str]]:
    """Runs of kept tokens, each joined to the next by one separator character."""
    chain: list[str] = []
    end = 0
    for match in _TOKEN_RE.finditer(text):
        token, gap = match.group(), text[end : match.start()]
        if chain and not (len(gap) == 1 and gap in separators and keep(token)):
            yield chain
            chain = []
        if keep(token):
            chain.append(token)
        end = match.end()
    if chain:
        yield chain


def _windows(chain: list[str], shortest: int, longest: int) -> Iterator[str]:
    """Every run of whole consecutive tokens whose joined length is in range."""
    for start in range(len(chain)):
        joined = ""
        for index in range(start, len(chain)):
            joined += chain[index]
            if len(joined) > longest:
                break
            if len(joined) >= shortest:
                yield joined


def _candidates(text: str, separators: str, shortest: int, longest: int) -> Iterator[str]:
    for chain in _chains(text, separators, lambda token: True):
        yield from _windows(chain, shortest, longest)


def _emails(text: str) -> Iterator[str]:
    for token in text.split():
        if "@" in token:
            yield from (match.group() for match in _EMAIL_RE.finditer(token))


def _is_card_group(token: str) -> bool:
    return token.isdigit() and len(token) >= CARD_GROUP_MIN


def _has_issuer_prefix(digits: str) -> bool:
    return any(
        len(digits) in lengths and int(low) <= int(digits[: len(low)]) <= int(high)
        for low, high, lengths in CARD_ISSUER_RANGES
    )


def _payment_cards(text: str) -> Iterator[str]:
    for chain in _chains(text, CARD_SEPARATORS, _is_card_group):
        for digits in _windows(chain, CARD_DIGITS_MIN, CARD_DIGITS_MAX):
            if _has_issuer_prefix(digits) and luhn.is_valid(digits):
                yield digits


def _is_prc_resident_id(candidate: str) -> bool:
    try:
        return ric.is_valid(candidate)
    except KeyError:  # python-stdnum raises it for a known province, unknown county
        return False


def _prc_resident_ids(text: str) -> Iterator[str]:
    for candidate in _candidates(text, " ", PRC_ID_CHARS, PRC_ID_CHARS):
        if _PRC_ID_RE.fullmatch(candidate) and _is_prc_resident_id(candidate):
            yield candidate.upper()


def _ibans(text: str) -> Iterator[str]:
    for candidate in _candidates(text, " ", IBAN_CHARS_MIN, IBAN_CHARS_MAX):
        if _IBAN_RE.fullmatch(candidate) and iban.is_valid(candidate):
            yield candidate.upper()


def _unambiguous_phone(raw: str, region: str) -> str | None:
    """E.164 form of a matched number if it counts as a hit (see module doc)."""
    try:
        number = phonenumbers.parse(raw, region, keep_raw_input=True)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    source = number.country_code_source
    if source in _PHONE_INTERNATIONAL_SOURCES:
        return e164
    digits = phonenumbers.normalize_digits_only(raw)
    nsn = phonenumbers.national_significant_number(number)
    mobile = phonenumbers.number_type(number) in _PHONE_MOBILE_TYPES
    if source == phonenumbers.CountryCodeSource.FROM_NUMBER_WITHOUT_PLUS_SIGN:
        return e164 if mobile and digits == f"{number.country_code}{nsn}" else None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    trunk_prefix = metadata.national_prefix if metadata is not None else None
    if trunk_prefix and digits == trunk_prefix + nsn:  # "010 ...": area code written out
        return e164
    return e164 if mobile and digits == nsn and len(nsn) >= _PHONE_MOBILE_NSN_MIN else None


def _phones(text: str) -> Iterator[str]:
    for region in PHONE_REGIONS:
        leniency = phonenumbers.Leniency.VALID
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=leniency):
            e164 = _unambiguous_phone(match.raw_string, region)
            if e164 is not None:
                yield e164


# strong checks (checksums) first, the heuristic one last: a value that trips
# several is reported under the most specific name
_DETECTORS: tuple[tuple[DetectorName, Callable[[str], Iterator[str]]], ...] = (
    ("email", _emails),
    ("payment_card", _payment_cards),
    ("prc_resident_id", _prc_resident_ids),
    ("iban", _ibans),
    ("phone", _phones),
)
DETECTOR_NAMES: tuple[DetectorName, ...] = tuple(name for name, _ in _DETECTORS)


def _findings(value: str, field: str) -> Iterator[Finding]:
    if len(value) > MAX_SCAN_CHARS:
        raise TooLongToScan(field, len(value))
    text = value.translate(_FULLWIDTH_TO_ASCII)
    if "@" not in text and sum(ch.isdigit() for ch in text) < MIN_DIGITS_TO_SCAN:
        return  # no detector can fire: skip the costly matchers (the common case)
    for name, detect in _DETECTORS:
        if next(detect(text), None) is not None:
            yield Finding(name)


def scan(value: str, *, field: str = "value") -> list[Finding]:
    """The detectors that fire on ``value``, each once, in ``DETECTOR_NAMES``
    order. Raises ``TooLongToScan`` (naming ``field``) past MAX_SCAN_CHARS."""
    return list(_findings(value, field))


def check_free_text(field: str, value: str) -> None:
    """Raise ``PersonalDataFound`` for the first detector that fires on
    ``value``, or ``TooLongToScan``; the error names ``field``, never the value."""
    finding = next(_findings(value, field), None)
    if finding is not None:
        raise PersonalDataFound(field, finding.detector)
