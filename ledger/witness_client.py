"""Submitting checkpoints to C2SP tlog-witnesses (ledger/witness.py is one).

``request_cosignature`` posts ``add-checkpoint`` with a consistency proof
from the size the witness last cosigned (as far as this server knows; a
409 answer says the witness's size, and the request is made again from
it), checks the returned line against the witness's configured key and
returns it. A witness that holds a *larger* tree than the one submitted
has seen this log further than this database goes: ``WitnessConflict``,
the alarm of a rollback or a fork.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from audit.cosignature import CosignerKey
from audit.note import SIG_PREFIX, NoteError, split_note

TIMEOUT_S = 5.0


class WitnessError(Exception):
    """The witness did not cosign (unreachable, refused, or a bad answer)."""


class WitnessConflict(WitnessError):
    """The witness holds a larger or another tree of this log."""

    def __init__(self, held: int, submitted: int) -> None:
        super().__init__(
            f"the witness holds size {held} of this log, the database {submitted}: "
            "rolled back, truncated or forked"
        )
        self.held = held


@dataclass(frozen=True, slots=True)
class WitnessConfig:
    url: str  # the submission prefix, e.g. http://127.0.0.1:8380
    key: CosignerKey

    @classmethod
    def parse(cls, url: str, vkey: str) -> WitnessConfig:
        if not url.startswith(("http://", "https://")):
            raise ValueError("witness: the URL must start with http:// or https://")
        try:
            return cls(url.rstrip("/"), CosignerKey.from_vkey(vkey))
        except NoteError as err:
            raise ValueError(f"witness: {err}") from None


def _post(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(
        url + "/add-checkpoint", data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
            return answer.status, answer.read(64 * 1024).decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read(64 * 1024).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as err:
        raise WitnessError(f"witness {url}: unreachable ({err.__class__.__name__})") from None


def request_cosignature(
    witness: WitnessConfig,
    note: str,
    size: int,
    proof_from: Callable[[int], list[bytes]],
    known: int = 0,
) -> str:
    """The witness's cosignature line (with its newline) of ``note``."""
    old = known if known <= size else 0
    body_text = note[: note.rfind("\n\n") + 1]
    redirected = False
    for _ in range(3):
        proof = proof_from(old) if 0 < old < size else []
        body = f"old {old}\n" + "".join(base64.b64encode(h).decode() + "\n" for h in proof)
        status, text = _post(witness.url, (body + "\n" + note).encode())
        if status == 200:
            # the answer is signature lines: parsed as more lines of the note
            lines = [line for line in text.splitlines() if line.startswith(SIG_PREFIX)]
            for line in lines:
                try:
                    _, (signature,) = split_note(body_text + "\n" + line + "\n")
                except (NoteError, ValueError):
                    continue
                if witness.key.verify(body_text, signature) is not None:
                    return line + "\n"
            raise WitnessError(f"witness {witness.url}: no valid cosignature by its key")
        if status == 409:
            held = text.strip()
            if not held.isdigit():
                raise WitnessError(f"witness {witness.url}: 409 without a size")
            if int(held) > size or int(held) == old:
                # larger than ours, or the same size with another root
                raise WitnessConflict(int(held), size)
            old, redirected = int(held), True
            continue
        if status == 422 and redirected:
            # no proof from the witness's own checkpoint: this tree is not an
            # extension of what the witness saw (a fork)
            raise WitnessConflict(old, size)
        raise WitnessError(f"witness {witness.url}: HTTP {status}: {text.strip()[:200]}")
    raise WitnessError(f"witness {witness.url}: size kept changing")
