"""Personal-data detectors at ingest: positives fire, near-misses pass, and no
error ever carries the value.

Every vector is a published test or example value (card-network test PANs,
the IBAN registry's examples, the PRC standard's sample ID, fictional-range
phone numbers, example.com addresses). Vectors whose meaning depends on a
library's data (phone validity, check digits) are re-checked against that
library before they are used, so a metadata update fails loudly here.
"""

from __future__ import annotations

import phonenumbers
import pytest
from stdnum import iban, luhn
from stdnum.cn import ric

from access.detectors import (
    DETECTOR_NAMES,
    MAX_SCAN_CHARS,
    Finding,
    PersonalDataFound,
    TooLongToScan,
    check_free_text,
    scan,
)
from access.errors import AccessError

FULLWIDTH_OFFSET = 0xFEE0  # U+FF14 (full-width 4) is ord("4") + this

POSITIVES: dict[str, list[str]] = {
    "email": [
        "jane.doe@example.com",
        "contact: first.last+loyalty@mail.example.com.",
        "<test_user-01@example.org>",
        "邮箱jane@example.com谢谢",  # CJK text glued on both sides
        "jane\uff20example.com",  # full-width '@' from a Chinese input method
    ],
    "payment_card": [
        "4111 1111 1111 1111",  # Visa test card
        "order ref 4111-1111-1111-1111 thanks",
        "5555555555554444",  # Mastercard test card
        "card 5555 5555 5555 4444.",
        "amex 3782 822463 10005",  # American Express test card, 4-6-5
        "6011111111111117",  # Discover test card
        "3530111333300000",  # JCB test card
        "6200000000000005",  # UnionPay test card
        "qty 12 4111 1111 1111 1111",  # a short number in front is not part of it
        "卡号4111111111111111",
        "\uff14111111111111111",  # a full-width leading digit
    ],
    "prc_resident_id": [
        "11010519491231002X",  # the sample in GB 11643-1999
        "ID: 11010519491231002x ok",
        "身份证110105 19491231 002X",  # grouped 6-8-4
    ],
    "iban": [
        "GB82 WEST 1234 5698 7654 32",  # ECBS/registry example
        "GB82WEST12345698765432",
        "pay to DE89 3704 0044 0532 0130 00 please",  # registry example
        "iban:de89370400440532013000.",
        "GB82 WEST 1234 5698 7654 32 THANKS 1234",  # words after it are not part of it
    ],
    "phone": [
        "+86 138 0013 8000",
        "call +86 138 0013 8000 now",
        "0086 138 0013 8000",
        "13800138000",  # mainland mobile, national form
        "电话138-0013-8000",
        "+1 202-555-0143",  # North American fictional range
        "+44 20 7946 0958",  # Ofcom drama range, any region in "+" form
        "tel 010 5555 0123",  # fixed line written with trunk prefix and area code
    ],
}
POSITIVE_CASES = [(name, value) for name, values in POSITIVES.items() for value in values]

# numbers that must be VALID per phonenumbers for the phone positives to mean anything
VALID_PHONES = ["+86 138 0013 8000", "+1 202-555-0143", "+44 20 7946 0958", "010 5555 0123"]
INVALID_ELEVEN_DIGITS = "12345678901"  # 11 digits, not a mainland mobile

CARD_WRONG_LUHN = ["4111 1111 1111 1112", "5555-5555-5555-4443"]
SIXTEEN_DIGIT_ORDER_NUMBERS = ["4000123456789012", "2026112400012345", "6200000000000006"]
IBAN_WRONG_CHECK = ["GB83 WEST 1234 5698 7654 32", "DE88 3704 0044 0532 0130 00"]
PRC_ID_WRONG_CHECK_DIGIT = "110105194912310021"
PRC_ID_IMPOSSIBLE_BIRTH_DATE = "11010519490230" + "002"  # 30 February, check digit added below

NEAR_MISSES = [
    "ORD-2026-000123",
    "store-0001",
    "postcode 100086",
    "2026-11-24T03:28:59Z",
    "2026-11-24 03:28:59",
    "ts 1764000000123",  # epoch milliseconds
    "ORD4111111111111111",  # a card-shaped run inside an id is not a card
    "v1.2.3@build",
    "user@localhost",
    "@example.com",
    "points 1500, tier grower, channel app",
    "",
]


def _with_check_digit(first17: str) -> str:
    return first17 + ric.calc_check_digit(first17 + "0")


@pytest.mark.parametrize(("detector", "value"), POSITIVE_CASES)
def test_detector_fires_on_its_positives(detector: str, value: str) -> None:
    assert detector in [finding.detector for finding in scan(value)]


@pytest.mark.parametrize(("detector", "value"), POSITIVE_CASES)
def test_error_names_field_and_detector_never_the_value(detector: str, value: str) -> None:
    with pytest.raises(PersonalDataFound) as caught:
        check_free_text("context.note", value)
    err = caught.value
    assert err.field == "context.note"
    assert err.detector in DETECTOR_NAMES
    assert str(err).startswith("context.note: looks like personal data (")
    assert str(err).endswith("); personal data is not accepted here")
    for shown in (str(err), repr(err), err.rule, *map(str, err.args)):
        assert value.strip() not in shown
        # every positive holds digits or an '@'; the message holds neither
        assert not any(char.isdigit() or char in "@\uff20" for char in shown)


def test_message_is_exactly_the_documented_rule() -> None:
    with pytest.raises(PersonalDataFound) as caught:
        check_free_text("metadata.comment", "4111 1111 1111 1111")
    assert str(caught.value) == (
        "metadata.comment: looks like personal data (payment_card); "
        "personal data is not accepted here"
    )
    assert isinstance(caught.value, AccessError)


def test_phone_vectors_are_valid_numbers_per_phonenumbers() -> None:
    for text in VALID_PHONES:
        assert phonenumbers.is_valid_number(phonenumbers.parse(text, "CN")), text


def test_card_and_iban_and_id_vectors_pass_their_checks() -> None:
    assert luhn.is_valid("4111111111111111") and luhn.is_valid("5555555555554444")
    assert iban.is_valid("GB82WEST12345698765432") and iban.is_valid("DE89370400440532013000")
    assert ric.is_valid("11010519491231002X")


@pytest.mark.parametrize("value", CARD_WRONG_LUHN + SIXTEEN_DIGIT_ORDER_NUMBERS)
def test_card_shaped_numbers_failing_luhn_pass(value: str) -> None:
    assert not luhn.is_valid(value.replace(" ", "").replace("-", ""))
    assert scan(f"order {value}") == []


@pytest.mark.parametrize(
    "first_digits",
    [
        "123456781234567",  # 16 digits, no scheme starts with 1
        "900000000000012",  # 16 digits, nor with 9
        "370000000000000",  # Amex prefix, but Amex numbers have 15 digits, not 16
    ],
)
def test_luhn_valid_numbers_without_an_issuer_prefix_pass(first_digits: str) -> None:
    value = first_digits + luhn.calc_check_digit(first_digits)
    assert luhn.is_valid(value)
    assert scan(f"order {value}") == []


@pytest.mark.parametrize("value", IBAN_WRONG_CHECK)
def test_iban_with_wrong_check_passes(value: str) -> None:
    assert not iban.is_valid(value)
    assert scan(value) == []


def test_prc_id_with_wrong_check_digit_passes() -> None:
    assert not ric.is_valid(PRC_ID_WRONG_CHECK_DIGIT)
    assert scan(PRC_ID_WRONG_CHECK_DIGIT) == []


def test_prc_id_with_impossible_birth_date_passes() -> None:
    value = _with_check_digit(PRC_ID_IMPOSSIBLE_BIRTH_DATE)
    assert value[-1] == ric.calc_check_digit(value)  # only the date is wrong
    assert not ric.is_valid(value)
    assert scan(value) == []


def test_prc_id_unknown_county_of_known_province_passes() -> None:
    # python-stdnum raises KeyError (not a validation error) for these
    value = _with_check_digit("36586619900101001")
    with pytest.raises(KeyError):
        ric.is_valid(value)
    assert scan(value) == []


def test_eleven_digit_number_that_is_no_phone_passes() -> None:
    assert not phonenumbers.is_valid_number(phonenumbers.parse(INVALID_ELEVEN_DIGITS, "CN"))
    assert scan(INVALID_ELEVEN_DIGITS) == []


def test_ten_digit_id_that_phonenumbers_calls_a_fixed_line_passes() -> None:
    # "2026000123" is a valid Guangzhou number to phonenumbers (area 20, no
    # trunk 0): read as national digits it would flag 4 in 10 of all 10-digit ids
    assert phonenumbers.is_valid_number(phonenumbers.parse("2026000123", "CN"))
    assert scan("2026000123") == []


def test_hong_kong_number_counts_only_in_international_form() -> None:
    assert phonenumbers.is_valid_number(phonenumbers.parse("+852 5123 4567"))
    assert scan("+852 5123 4567") == [Finding("phone")]
    assert scan("5123 4567") == []


@pytest.mark.parametrize("value", NEAR_MISSES)
def test_near_misses_pass(value: str) -> None:
    assert scan(value) == []
    check_free_text("context.note", value)


def test_each_detector_reported_once_in_fixed_order() -> None:
    text = (
        "+86 138 0013 8000 or 13800138000, GB82 WEST 1234 5698 7654 32, "
        "11010519491231002X, 5555 5555 5555 4444 4111-1111-1111-1111, "
        "a@example.com b@example.com"
    )
    assert [f.detector for f in scan(text)] == list(DETECTOR_NAMES)
    assert sorted(DETECTOR_NAMES) == sorted(POSITIVES)


def test_findings_carry_the_detector_name_only() -> None:
    (finding,) = scan("jane.doe@example.com")
    assert finding == Finding("email")
    assert "example" not in repr(finding)


def test_check_free_text_reports_the_first_finding() -> None:
    with pytest.raises(PersonalDataFound) as caught:
        check_free_text("note", "13800138000 jane@example.com")
    assert caught.value.detector == "email"


def test_full_width_digits_throughout_are_folded() -> None:
    card = "".join(chr(ord(c) + FULLWIDTH_OFFSET) for c in "4111111111111111")
    assert scan(card) == [Finding("payment_card")]


@pytest.mark.parametrize("space", ["\u00a0", "\u3000"])
def test_no_break_and_ideographic_spaces_join_groups(space: str) -> None:
    assert scan(space.join(["4111", "1111", "1111", "1111"])) == [Finding("payment_card")]


def test_value_at_the_bound_is_scanned() -> None:
    value = "x" * (MAX_SCAN_CHARS - 20) + " 4111111111111111"
    assert len(value) < MAX_SCAN_CHARS
    assert scan(value.ljust(MAX_SCAN_CHARS)) == [Finding("payment_card")]


def test_value_over_the_bound_is_refused_naming_the_field() -> None:
    value = "4111111111111111 " + "x" * MAX_SCAN_CHARS
    with pytest.raises(TooLongToScan) as caught:
        check_free_text("metadata.comment", value)
    err = caught.value
    assert isinstance(err, ValueError)
    assert err.field == "metadata.comment"
    assert str(err) == (
        f"metadata.comment: too long to scan for personal data: "
        f"expected at most {MAX_SCAN_CHARS} characters, got {len(value)}"
    )
    assert "4111" not in str(err)
    with pytest.raises(TooLongToScan):
        scan(value)
