"""audit.note against the published signed-note example and the C2SP formats.

- the golang.org/x/mod/sumdb/note example reproduced byte for byte from its
  signer key and text, and opened with its verifier key;
- rejections: modified text or signature, only unknown keys, a known key's
  failing signature, malformed notes and key strings;
- unknown signatures ignored, cosignatures by several known keys accepted;
- checkpoints: exact text, round trip, strict parsing, origin check.

No network, no database; keys other than the published example are generated.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from audit.note import (
    Checkpoint,
    CheckpointError,
    NoteError,
    Signature,
    Signer,
    Verifier,
    key_id,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)

# copied from the shared test data with their provenance: tests/vectors/upstream/README.md
TESTDATA = Path(__file__).resolve().parent / "vectors" / "upstream"
VECTOR: dict[str, Any] = json.loads((TESTDATA / "signed-note-vectors.json").read_text("utf-8"))
TEXT: str = VECTOR["text"]
SIGNED: str = VECTOR["signed_note"]
NAME = "PeterNeumann"
DASH = "\u2014"

SIGNER = Signer.from_key(VECTOR["signer_key"])
VERIFIER = Verifier.from_key(VECTOR["verifier_key"])
OTHER = Signer.generate("witness.example/w1")
STRANGER = Signer.generate("stranger.example")


def sig_line(note: str) -> str:
    return note.split("\n\n", 1)[1]


def reencode(line: str, change: Any) -> str:
    """A signature line with its decoded blob passed through ``change``."""
    prefix, b64 = line.rstrip("\n").rsplit(" ", 1)
    blob = change(base64.b64decode(b64))
    return f"{prefix} {base64.b64encode(blob).decode()}\n"


# -- the published example ------------------------------------------------------------


def test_vector_note_is_reproduced_byte_for_byte() -> None:
    assert sign_note(TEXT, SIGNER) == SIGNED
    assert sign_note(TEXT, SIGNER).encode("utf-8") == SIGNED.encode("utf-8")
    assert sign_note(TEXT, SIGNER) == sign_note(TEXT, SIGNER)  # Ed25519 is deterministic


def test_vector_keys() -> None:
    assert SIGNER.name == VERIFIER.name == NAME
    assert SIGNER.key_id == VERIFIER.key_id == 0xC74F20A3
    assert SIGNER.verifier_key() == VECTOR["verifier_key"]
    assert VERIFIER.key() == VECTOR["verifier_key"]
    assert SIGNER.signer_key() == VECTOR["signer_key"]
    assert key_id(NAME, VERIFIER.public_key) == 0xC74F20A3
    assert SIGNER.public_key == VERIFIER.public_key
    assert f"{NAME}+c74f20a3" in repr(VERIFIER)
    assert "PRIVATE" not in repr(SIGNER)


def test_vector_note_opens() -> None:
    for note in (SIGNED, SIGNED.encode("utf-8")):
        opened = open_note(note, [VERIFIER])
        assert opened.text == TEXT
        assert list(opened.signatures) == [NAME]
        sig = opened.signatures[NAME]
        assert sig.key_id == 0xC74F20A3
        assert len(sig.signature) == 64
        assert sig.line() == sig_line(SIGNED)
        assert opened.unverified == ()
        assert VERIFIER.verify(TEXT, sig.signature)
        assert VERIFIER.verify(TEXT.encode(), sig.signature)
        assert SIGNER.sign(TEXT) == sig.signature
        assert SIGNER.signature_line(TEXT) == sig_line(SIGNED)


# -- rejections -------------------------------------------------------------------------


def test_modified_text_is_rejected() -> None:
    for bad in (
        SIGNED.replace("cryptography", "Cryptography", 1),
        SIGNED.replace("is.\n", "is!\n", 1),
        "Extra line.\n" + SIGNED,
    ):
        with pytest.raises(NoteError, match="expected valid, got invalid"):
            open_note(bad, [VERIFIER])
    good = open_note(SIGNED, [VERIFIER]).signatures[NAME].signature
    assert not VERIFIER.verify(TEXT + "x\n", good)


def test_modified_signature_is_rejected() -> None:
    line = sig_line(SIGNED)
    for i in (4, 20, 67):
        bad = reencode(line, lambda b, i=i: b[:i] + bytes([b[i] ^ 1]) + b[i + 1 :])
        with pytest.raises(NoteError, match="expected valid, got invalid"):
            open_note(TEXT + "\n" + bad, [VERIFIER])
    for change in (lambda b: b[:-1], lambda b: b + b"\x00"):  # wrong length
        with pytest.raises(NoteError, match="expected valid, got invalid"):
            open_note(TEXT + "\n" + reencode(line, change), [VERIFIER])


def test_note_signed_only_by_unknown_keys_is_rejected() -> None:
    with pytest.raises(NoteError, match="not signed by a known key"):
        open_note(sign_note(TEXT, STRANGER), [VERIFIER])
    with pytest.raises(NoteError, match="not signed by a known key"):
        open_note(SIGNED, [OTHER.verifier()])
    with pytest.raises(NoteError, match="not signed by a known key"):
        open_note(SIGNED, [])
    # the right name with another key id is another key
    impostor = Signer.generate(NAME)
    with pytest.raises(NoteError, match="not signed by a known key"):
        open_note(sign_note(TEXT, impostor), [VERIFIER])
    # a key id changed in the line makes it an unknown key
    line = reencode(sig_line(SIGNED), lambda b: bytes([b[0] ^ 1]) + b[1:])
    with pytest.raises(NoteError, match="not signed by a known key"):
        open_note(TEXT + "\n" + line, [VERIFIER])


def test_unknown_extra_signature_is_ignored() -> None:
    note = SIGNED + STRANGER.signature_line(TEXT)
    opened = open_note(note, [VERIFIER])
    assert list(opened.signatures) == [NAME]
    assert [s.name for s in opened.unverified] == [STRANGER.name]
    assert opened.unverified[0].key_id == STRANGER.key_id
    # even a garbage signature by an unknown key is only ignored
    garbage = Signature("unknown.example", 7, b"\x00" * 10).line()
    assert open_note(SIGNED + garbage, [VERIFIER]).unverified[0].name == "unknown.example"


def test_cosignatures_by_known_keys_are_all_verified() -> None:
    note = sign_note(TEXT, SIGNER, OTHER)
    assert note.startswith(SIGNED)
    opened = open_note(note, [VERIFIER, OTHER.verifier()])
    assert set(opened.signatures) == {NAME, OTHER.name}
    assert opened.unverified == ()
    only_one = open_note(note, [OTHER.verifier()])
    assert set(only_one.signatures) == {OTHER.name}
    assert [s.name for s in only_one.unverified] == [NAME]


def test_a_failing_known_signature_rejects_the_whole_note() -> None:
    bad_other = reencode(OTHER.signature_line(TEXT), lambda b: b[:-1] + bytes([b[-1] ^ 1]))
    with pytest.raises(NoteError, match=f"signature by {OTHER.name}"):
        open_note(SIGNED + bad_other, [VERIFIER, OTHER.verifier()])
    # accepted when the failing key is not known
    assert open_note(SIGNED + bad_other, [VERIFIER]).unverified[0].name == OTHER.name


def test_repeated_signature_lines_count_once() -> None:
    note = SIGNED + sig_line(SIGNED) + STRANGER.signature_line(TEXT) * 2
    opened = open_note(note, [VERIFIER])
    assert list(opened.signatures) == [NAME]
    assert len(opened.unverified) == 1


FAKE_LINES = [Signature(f"k{i}.example", i, b"\x01" * 64).line() for i in range(100)]
LINE = sig_line(SIGNED)
B64 = LINE.rstrip("\n").rsplit(" ", 1)[1]
MALFORMED = {
    "no blank line": TEXT + LINE,
    "no signature lines": TEXT + "\n",
    "no final newline": SIGNED.rstrip("\n"),
    "empty text": "\n" + LINE,
    "text with an empty line": TEXT.replace("\n", "\n\n", 1) + "\n" + LINE,
    "text starting with an empty line": "\n" + SIGNED,
    "hyphens instead of em dash": TEXT + "\n" + LINE.replace(DASH, "--"),
    "no space after the dash": TEXT + "\n" + LINE.replace(f"{DASH} ", DASH),
    "no signature after the name": f"{TEXT}\n{DASH} {NAME}\n",
    "empty signature": f"{TEXT}\n{DASH} {NAME} \n",
    "empty name": f"{TEXT}\n{DASH}  {B64}\n",
    "name with a space": f"{TEXT}\n{DASH} Peter Neumann {B64}\n",
    "name with a plus": f"{TEXT}\n{DASH} Peter+Neumann {B64}\n",
    "bad base64": f"{TEXT}\n{DASH} {NAME} {B64[:-2]}!=\n",
    "base64 without padding": f"{TEXT}\n{DASH} {NAME} {B64.rstrip('=')}\n",
    "url-safe base64": f"{TEXT}\n{DASH} {NAME} {B64.replace('/', '_')}\n",
    "non-canonical base64": f"{TEXT}\n{DASH} {NAME} {B64[:-2]}N=\n",
    "signature shorter than 5 bytes": f"{TEXT}\n{DASH} {NAME} AAAAAA==\n",
    "empty line among signatures": SIGNED + "\n" + LINE,
    "trailing blank line": SIGNED + "\n",
    "carriage return": SIGNED.replace("\n", "\r\n"),
    "tab in text": SIGNED.replace("If you", "If\tyou", 1),
    "NUL in text": SIGNED.replace("If", "I\x00", 1),
    "lone surrogate": SIGNED.replace("If", "I\udc80", 1),
    "101 signatures": SIGNED + "".join(FAKE_LINES),
}


@pytest.mark.parametrize("note", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_note_is_rejected(note: str) -> None:
    with pytest.raises(NoteError):
        open_note(note, [VERIFIER])


def test_malformed_note_messages() -> None:
    with pytest.raises(NoteError, match="expected at most 100, got 101"):
        open_note(MALFORMED["101 signatures"], [VERIFIER])
    with pytest.raises(NoteError, match="no blank line"):
        open_note(MALFORMED["no blank line"], [VERIFIER])
    with pytest.raises(NoteError, match="expected at least 1, got 0"):
        open_note(MALFORMED["no signature lines"], [VERIFIER])
    with pytest.raises(NoteError, match="not valid UTF-8"):
        open_note(SIGNED.encode() + b"\xff\n", [VERIFIER])
    with pytest.raises(NoteError, match="expected canonical base64"):
        open_note(MALFORMED["non-canonical base64"], [VERIFIER])
    # exactly 100 signature lines is still fine
    hundred = SIGNED + "".join(FAKE_LINES[:99])
    assert len(open_note(hundred, [VERIFIER]).unverified) == 99


def test_sign_note_refuses_bad_text_and_signers() -> None:
    for text in ("", "no newline", "a\n\nb\n", "\nb\n", "tab\there\n", "cr\r\n"):
        with pytest.raises(NoteError):
            sign_note(text, SIGNER)
    with pytest.raises(ValueError, match="at least one signer"):
        sign_note(TEXT)
    with pytest.raises(ValueError, match="twice"):
        sign_note(TEXT, SIGNER, Signer.from_key(VECTOR["signer_key"]))
    for name in ("", "a b", "a+b", "tab\tname", "a\u2003b"):
        with pytest.raises(NoteError, match="key name"):
            Signer.generate(name)


def test_two_verifier_keys_under_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="one key per name"):
        open_note(SIGNED, [VERIFIER, Signer.generate(NAME).verifier()])
    assert open_note(SIGNED, [VERIFIER, VERIFIER]).text == TEXT


# -- key strings -----------------------------------------------------------------------------


def test_generated_keys_round_trip() -> None:
    signer = Signer.from_key(OTHER.signer_key())
    assert signer.key_id == OTHER.key_id
    assert signer.sign(TEXT) == OTHER.sign(TEXT)
    verifier = Verifier.from_key(OTHER.verifier_key())
    assert verifier.key() == OTHER.verifier_key()
    assert verifier.verify(TEXT, OTHER.sign(TEXT))
    assert not verifier.verify(TEXT, SIGNER.sign(TEXT))
    assert not verifier.verify(TEXT, b"short")


VKEY = VECTOR["verifier_key"]
SKEY = VECTOR["signer_key"]
VKEY_DATA = VKEY.split("+", 2)[2]
SKEY_DATA = SKEY.split("+", 4)[4]


def with_data(prefix: str, raw: bytes) -> str:
    return prefix + base64.b64encode(raw).decode()


BAD_KEYS = {
    "verifier: wrong key id": (Verifier, VKEY.replace("c74f20a3", "c74f20a4")),
    "verifier: short key id": (Verifier, VKEY.replace("c74f20a3", "c74f20a")),
    "verifier: non-hex key id": (Verifier, VKEY.replace("c74f20a3", "c74f20ag")),
    "verifier: signed key id": (Verifier, VKEY.replace("c74f20a3", "+74f20a3")),
    "verifier: missing field": (Verifier, f"{NAME}+{VKEY_DATA}"),
    "verifier: bad name": (Verifier, VKEY.replace(NAME, "Peter Neumann")),
    "verifier: bad base64": (Verifier, VKEY[:-1] + "!"),
    "verifier: algorithm 2": (
        Verifier,
        with_data(f"{NAME}+c74f20a3+", b"\x02" + base64.b64decode(VKEY_DATA)[1:]),
    ),
    "verifier: short key": (
        Verifier,
        with_data(f"{NAME}+c74f20a3+", base64.b64decode(VKEY_DATA)[:-1]),
    ),
    "signer: no PRIVATE+KEY": (Signer, SKEY.replace("PRIVATE+KEY+", "")),
    "signer: wrong key id": (Signer, SKEY.replace("c74f20a3", "00000000")),
    "signer: missing field": (Signer, f"PRIVATE+KEY+{NAME}+{SKEY_DATA}"),
    "signer: algorithm 2": (
        Signer,
        with_data(f"PRIVATE+KEY+{NAME}+c74f20a3+", b"\x02" + base64.b64decode(SKEY_DATA)[1:]),
    ),
    "signer: long seed": (
        Signer,
        with_data(f"PRIVATE+KEY+{NAME}+c74f20a3+", base64.b64decode(SKEY_DATA) + b"\x00"),
    ),
    "signer: renamed": (Signer, SKEY.replace(NAME, "PeterNeuman")),
}


@pytest.mark.parametrize(("cls", "key"), BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_malformed_key_strings_are_rejected(cls: type[Signer] | type[Verifier], key: str) -> None:
    with pytest.raises(NoteError, match="expected"):
        cls.from_key(key)


def test_key_errors_do_not_echo_the_private_key() -> None:
    with pytest.raises(NoteError) as info:
        Signer.from_key(SKEY.replace("c74f20a3", "00000000"))
    assert SKEY_DATA not in str(info.value)
    assert "expected c74f20a3, got 00000000" in str(info.value)
    for bad in (SKEY[:-1] + "!", SKEY[:-2] + "0="):
        with pytest.raises(NoteError, match="signer key data: expected") as info:
            Signer.from_key(bad)
        assert SKEY_DATA[:-2] not in str(info.value)


# -- checkpoints --------------------------------------------------------------------------------

ROOT = bytes(range(32))
ORIGIN = "ledger.example/log"


def test_checkpoint_text_and_round_trip() -> None:
    cp = Checkpoint(ORIGIN, 42, ROOT)
    assert cp.text() == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n"
    assert Checkpoint.parse(cp.text()) == cp
    ext = Checkpoint(ORIGIN, 0, ROOT, ("— not a signature, an extension", "k=v"))
    assert ext.text().endswith("\n\u2014 not a signature, an extension\nk=v\n")
    assert Checkpoint.parse(ext.text()) == ext
    big = Checkpoint(ORIGIN, 2**64 - 1, ROOT)
    assert Checkpoint.parse(big.text()).size == 2**64 - 1


def test_signed_checkpoint_round_trip() -> None:
    log = Signer.generate(ORIGIN)
    cp = Checkpoint(ORIGIN, 7, ROOT, ("ext",))
    note = sign_checkpoint(cp, log, OTHER)
    assert note == sign_checkpoint(cp, log, OTHER)
    got, opened = open_checkpoint(note, [log.verifier()], origin=ORIGIN)
    assert got == cp
    assert list(opened.signatures) == [ORIGIN]
    assert [s.name for s in opened.unverified] == [OTHER.name]
    got, _ = open_checkpoint(note.encode(), [log.verifier(), OTHER.verifier()])
    assert got == cp
    with pytest.raises(CheckpointError, match=f"expected 'other.example/log', got '{ORIGIN}'"):
        open_checkpoint(note, [log.verifier()], origin="other.example/log")
    with pytest.raises(NoteError, match="not signed by a known key"):
        open_checkpoint(note, [VERIFIER], origin=ORIGIN)
    tampered = note.replace("\n7\n", "\n8\n", 1)
    with pytest.raises(NoteError, match="expected valid, got invalid"):
        open_checkpoint(tampered, [log.verifier()])


def test_signed_note_that_is_not_a_checkpoint() -> None:
    with pytest.raises(CheckpointError):
        open_checkpoint(SIGNED, [VERIFIER])


GOOD_ROOT = base64.b64encode(ROOT).decode()
BAD_CHECKPOINTS = {
    "leading zero": f"{ORIGIN}\n042\n{GOOD_ROOT}\n",
    "double zero": f"{ORIGIN}\n00\n{GOOD_ROOT}\n",
    "plus sign": f"{ORIGIN}\n+42\n{GOOD_ROOT}\n",
    "minus sign": f"{ORIGIN}\n-1\n{GOOD_ROOT}\n",
    "spaces": f"{ORIGIN}\n 42\n{GOOD_ROOT}\n",
    "underscore": f"{ORIGIN}\n4_2\n{GOOD_ROOT}\n",
    "non-ASCII digits": f"{ORIGIN}\n\uff14\uff12\n{GOOD_ROOT}\n",
    "hex size": f"{ORIGIN}\n0x2a\n{GOOD_ROOT}\n",
    "empty size": f"{ORIGIN}\n\n{GOOD_ROOT}\n",
    "size over 2**64-1": f"{ORIGIN}\n{2**64}\n{GOOD_ROOT}\n",
    "empty origin": f"\n42\n{GOOD_ROOT}\n",
    "root of 31 bytes": f"{ORIGIN}\n42\n{base64.b64encode(ROOT[:31]).decode()}\n",
    "root of 33 bytes": f"{ORIGIN}\n42\n{base64.b64encode(ROOT + b'x').decode()}\n",
    "root in hex": f"{ORIGIN}\n42\n{ROOT.hex()}\n",
    "root non-canonical": f"{ORIGIN}\n42\n{GOOD_ROOT[:-2]}9=\n",
    "root unpadded": f"{ORIGIN}\n42\n{GOOD_ROOT.rstrip('=')}\n",
    "two lines": f"{ORIGIN}\n42\n",
    "no final newline": f"{ORIGIN}\n42\n{GOOD_ROOT}",
    "empty extension line": f"{ORIGIN}\n42\n{GOOD_ROOT}\n\n",
    "control character in origin": f"{ORIGIN}\x7f\x01\n42\n{GOOD_ROOT}\n",
}


@pytest.mark.parametrize("text", BAD_CHECKPOINTS.values(), ids=BAD_CHECKPOINTS.keys())
def test_checkpoint_parsing_is_strict(text: str) -> None:
    with pytest.raises(CheckpointError, match="expected"):
        Checkpoint.parse(text)


def test_checkpoint_constructor_validates() -> None:
    args: tuple[Any, ...]
    for args in [
        ("", 1, ROOT),
        ("a\nb", 1, ROOT),
        (ORIGIN, -1, ROOT),
        (ORIGIN, True, ROOT),
        (ORIGIN, 2**64, ROOT),
        (ORIGIN, 1, ROOT[:31]),
    ]:
        with pytest.raises(CheckpointError):
            Checkpoint(*args)
    with pytest.raises(CheckpointError):
        Checkpoint(ORIGIN, 1, ROOT, ("",))
    with pytest.raises(CheckpointError):
        Checkpoint(ORIGIN, 1, ROOT, ("two\nlines",))
