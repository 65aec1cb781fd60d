"""Server configuration: one dataclass, filled from flags or environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from access.ratelimit import DEFAULT_LOOKUP_RATE, Rate
from ledger.program.config import DEFAULT_PROGRAM, Program
from ledger.witness_client import WitnessConfig

ENV_PREFIX = "LOYALTY_LEDGER_"


@dataclass(frozen=True, slots=True)
class Limits:
    max_points_per_entry: int = 1_000_000  # points


@dataclass(frozen=True, slots=True)
class ServerConfig:
    data_dir: Path = Path("data")
    database_url: str = ""  # empty: sqlite file ledger.db inside data_dir
    listen: str = "127.0.0.1:50051"  # host:port; port 0 picks a free port
    max_message_bytes: int = 64 * 1024  # gRPC receive limit per message
    max_concurrent_rpcs: int = 4096  # beyond this, calls get RESOURCE_EXHAUSTED
    max_batch: int = 512  # commands per group commit
    grace_seconds: float = 10.0  # in-flight calls get this long on SIGTERM
    limits: Limits = field(default_factory=Limits)
    # "tokens": every ledger call needs a bearer token signed by this
    # server's key; "mtls": TLS with client certificates from client_ca
    # required, a certificate names the principal unless a token is sent;
    # "none": development only, no credentials at all
    auth: str = "tokens"
    # listening without TLS must be asked for (development); otherwise
    # tls_cert and tls_key are required
    plaintext: bool = False
    tls_cert: Path | None = None  # server certificate chain (PEM)
    tls_key: Path | None = None  # its private key (PEM)
    client_ca: Path | None = None  # CA that signs client certificates (mTLS)
    # abuse limits on mutating calls (calls per second, burst); 0 turns off
    principal_rate: Rate = field(default_factory=lambda: Rate(0, 0))
    member_rate: Rate = field(default_factory=lambda: Rate(20, 100))
    lookup_rate: Rate = field(default_factory=lambda: DEFAULT_LOOKUP_RATE)  # per principal
    # personal fields beyond the standard five that the program collects
    member_fields: tuple[str, ...] = ()
    phone_region: str = "CN"  # how to read phone numbers without +country
    keyring: Path | None = None  # KEK keyring file; None: data_dir/keys/keyring.json
    log_origin: str = "loyalty-ledger.local"  # checkpoint origins: <this>/journal, <this>/access
    checkpoint_interval: float = 60.0  # seconds between scheduled checkpoints; 0: on demand only
    witness_dir: Path | None = None  # every new checkpoint is also written here
    metrics_listen: str = ""  # host:port of the Prometheus endpoint; "": none
    metrics_dir: Path | None = None  # multiprocess metrics files (set by the supervisor)
    # C2SP tlog-witnesses each new checkpoint is submitted to (ledger/witness_client.py)
    witnesses: tuple[WitnessConfig, ...] = ()
    # what the log signer signed, outside the database (ledger/signer_state.py);
    # None: signer-state/ beside the keyring
    signer_state: Path | None = None
    program: Program = DEFAULT_PROGRAM  # the program file's rules (docs/program-rules.md)
    settle_interval: float = 1.0  # seconds between sweeps for due holds, lots, pending points
    # serve: worker processes doing the per-call work, beside one writer
    # process (ledger/service/workers.py); 0: one process does everything
    workers: int = 0

    @property
    def token_key_path(self) -> Path:
        return self.data_dir / "keys" / "token-signing.pem"

    @property
    def revocations_path(self) -> Path:
        return self.data_dir / "keys" / "revoked-tokens.txt"

    @property
    def keyring_path(self) -> Path:
        return self.keyring or self.data_dir / "keys" / "keyring.json"

    @property
    def signer_state_path(self) -> Path:
        return self.signer_state or self.keyring_path.parent / "signer-state"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ledger.db').resolve()}"


def env(name: str, default: str = "") -> str:
    return os.environ.get(ENV_PREFIX + name, default)
