"""Errors of the ``ledger.keys`` package.

Invariants:

- ``DecryptionError`` always carries the one fixed message ``"decryption
  failed"``, whatever went wrong (wrong key, bad tag, wrong member or field
  binding, truncated blob, unknown format or key version). Callers and logs
  learn nothing that could serve as an oracle. It is raised ``from None`` so
  no underlying exception travels with it.
- ``KeyringError`` messages name the rule that was broken, never key
  material or file contents.
"""

from __future__ import annotations

DECRYPTION_FAILED = "decryption failed"


class KeysError(Exception):
    """Root of every error ``ledger.keys`` raises on purpose."""


class DecryptionError(KeysError):
    """A ciphertext or wrapped key could not be opened (always the same message)."""

    def __init__(self) -> None:
        super().__init__(DECRYPTION_FAILED)


class KeyringError(KeysError):
    """The keyring file or a keyring operation breaks a rule (the message names it)."""
