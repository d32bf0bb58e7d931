"""Settings: read once from the environment (prefix ``TIEPDAN_``) and mapped onto each package's
frozen ``Options``. Nothing else in the code base reads the environment.

Embedded default (no variable set): SQLite under ``./data``, the in-memory bus, a development
keyring generated into ``./data/keys`` on first run. ``TIEPDAN_MODE=production`` refuses
development keys and requires a cookie secret of its own.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from minutes.options import DocumentOptions
from recorder.options import RecorderOptions
from signaling.tokens import TokenOptions

__all__ = ["Settings", "Role"]

Role = Literal["all", "media", "control", "worker"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIEPDAN_", extra="ignore", frozen=True)

    mode: Literal["dev", "production"] = "dev"
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default sqlite+aiosqlite under data_dir"
    )
    redis_url: str | None = Field(default=None, description="redis://… to scale past one process")
    redis_prefix: str = "tiepdan:"
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    process_role: Role = "all"

    keyring_path: Path | None = None
    keyring_passphrase: str | None = None

    token_issuer: str = "tiepdan"
    token_audience: str = Field(default="tiepdan", description="a token's aud is this plus ':ws' (the live "
                                "room) or ':api' (the REST API)")
    token_ttl_s: int = 600

    cookie_secure: bool = False
    session_idle_s: int = 8 * 3600
    login_free_failures: int = Field(default=3, ge=0, description="failed logins per name and address before "
                                     "each further attempt waits 2, 4, 8 … s")
    login_backoff_cap_s: int = Field(default=900, ge=1, description="longest such wait")
    login_ip_max_failures: int = Field(default=20, ge=1, description="failed logins per address (any name) "
                                       "within login_window_s")
    login_window_s: int = 300

    ws_max_frame_bytes: int = 64 * 1024
    ws_rate_per_s: float = 20.0
    ws_rate_burst: int = 40
    ws_reconnect_grace_s: float = 30.0
    connect_ticket_ttl_s: int = 60

    ice_servers: str = Field(default="", description="comma-separated stun:/turn: URLs")
    media_host_addresses: str = Field(
        default="", description="comma-separated addresses the SFU offers as ICE host candidates (empty: all)")
    media_venue_max_kbps: int = Field(default=1500, ge=100, le=20000,
                                      description="cap of each venue's video layer unless its session says")
    media_link_lost_after_s: float = Field(default=5.0, ge=0.5, le=60.0,
                                           description="a venue whose media stops this long is lost (room."
                                           "venue_link_lost; the case being received there pauses); the legal "
                                           "rule is 5 s, lower it only in tests")
    media_rtp_forwarding: bool = Field(default=True, description="the SFU forwards subscribers' media at the "
                                       "RTP level (header rewrite per slot, NACK from its own history); false: "
                                       "re-packetize assembled frames through aiortc's sender (issue #13)")
    media_receive_buffer_bytes: int = Field(default=0, ge=0, le=64 * 1024 * 1024,
                                            description="SO_RCVBUF asked for on every media socket (0: "
                                            "aioice's 256 KiB); more absorbs bigger keyframe bursts but "
                                            "turns an overloaded node's loss into delay; capped by "
                                            "net.core.rmem_max")
    media_direct_receive: bool = Field(default=True, description="the SFU handles received SRTP in the "
                                       "socket's callback instead of through aioice's queue and a task per "
                                       "packet (same handling, less CPU); false: aiortc's own path (issue #13)")
    media_native_forwarding: bool = Field(default=True, description="the SFU rewrites, protects and sends each "
                                          "forwarded RTP packet in C (sfu.native; same bytes on the wire, less "
                                          "CPU); false: the Python path (issue #13)")
    media_remb_interval_ms: int = Field(default=200, ge=0, le=5000,
                                        description="the SFU tells a publisher its uplink estimate (REMB) at "
                                        "most this often while it holds or rises, at once when it drops 3 %; "
                                        "0: every estimate aiortc asks for (issue #13)")
    turn_secret: str | None = None
    turn_ttl_s: int = 3600

    task_restart_initial_s: float = Field(default=0.5, gt=0,
                                          description="pause before a crashed background loop restarts")
    task_restart_max_s: float = Field(default=30.0, gt=0,
                                      description="longest such pause (it doubles with each crash in a row)")

    timekeeper_tick_s: float = Field(default=5.0, ge=0.05, le=300,
                                     description="seconds between two turns of the loop that opens and closes "
                                     "sessions on time (roles all and control)")
    timekeeper_lock_ttl_s: float = Field(default=30.0, ge=0.5, le=3600,
                                         description="time to live of its leader lock (Redis, or in process); "
                                         "at least three turns")
    clock_offset_s: float = Field(default=0.0, ge=-400 * 86400, le=400 * 86400,
                                  description="dev only: seconds added to the clock of the console and the "
                                  "scheduler, to rehearse a session on another day; refused in production")

    recording_enabled: bool = Field(default=True, description="the media role records every session's venues "
                                    "(false: no recorder; the rooms work without)")
    recording_dir: Path | None = Field(default=None, description="the recordings volume (one directory per "
                                       "session; media processes write it, control and worker processes "
                                       "read it: a shared path in the scaled topology); default "
                                       "<data_dir>/recordings")
    recording_retention_days: int | None = Field(default=None, ge=1, description="recorded media older than this "
                                                 "is deleted by `tiepdan recordings expire`, leaving a tombstone "
                                                 "in the manifest chain (unset: kept for ever)")
    recording_encrypt_all: bool = Field(default=True, description="encrypt every recorded file as it is written, "
                                        "not only a closed segment's (a denunciation called before the chair "
                                        "starts the closed segment never reaches the disk in clear)")
    replay_poll_s: float = Field(default=2.0, ge=0.05, le=60, description="how often the worker role looks for "
                                 "a queued replay job (a request in the same process wakes it at once)")
    replay_nice: int = Field(default=10, ge=0, le=19, description="niceness of the process composing a replay")

    signer: Literal["none", "pkcs12", "pkcs11"] = Field(
        default="none", description="who signs the minutes' documents (ký số): none (they stay unsigned drafts), "
        "pkcs12 (a .p12/.pfx file) or pkcs11 (a USB token through its PKCS#11 module)")
    signer_pkcs12_path: Path | None = Field(default=None, description="the PKCS#12 file (signer pkcs12)")
    signer_pkcs11_module: str | None = Field(default=None, description="the token's PKCS#11 library, e.g. "
                                             "/usr/lib/softhsm/libsofthsm2.so (signer pkcs11)")
    signer_pkcs11_token_label: str | None = None
    signer_pkcs11_key_label: str | None = Field(default=None, description="label of the key and its certificate")
    signer_pin: SecretStr | None = Field(default=None, description="the token's user PIN or the PKCS#12 "
                                         "passphrase (never logged); or signer_pin_file")
    signer_pin_file: Path | None = Field(default=None, description="a file holding the PIN or passphrase "
                                         "(first line), e.g. a systemd credential")
    documents_dir: Path | None = Field(default=None, description="signed documents (default <data_dir>/documents)")
    documents_location: str = Field(default="Việt Nam", max_length=200,
                                    description="the place written into each signature")
    issuers_file: Path | None = Field(default=None, description="a JSON file of the bodies that issue the "
                                      "documents (Party and State track) and the names of the leaders who host "
                                      "(docs/documents.md); default the pilot province's bodies, no names")

    gc_freeze: bool = Field(default=True, description="freeze what the start made out of the cyclic garbage "
                            "collector's reach (tiepdan.gc_policy): a full collection then no longer stops the "
                            "process for 70-100 ms; false turns it off, for comparison")
    gc_refreeze_settle_s: float = Field(default=10.0, ge=0, le=3600,
                                        description="media roles: once the peer connections have not changed "
                                        "for this long, what they made is frozen too, after one full "
                                        "collection frees what closed links left (tiepdan.gc_policy)")

    log_level: str = "INFO"
    log_json: bool = True

    @model_validator(mode="after")
    def _check_timekeeper_and_clock(self) -> Settings:
        if self.timekeeper_lock_ttl_s < 3 * self.timekeeper_tick_s:
            raise ValueError("TIEPDAN_TIMEKEEPER_LOCK_TTL_S must be at least three times TIEPDAN_TIMEKEEPER_TICK_S "
                             "(the lock is renewed every turn, well before it expires)")
        if self.clock_offset_s and self.mode == "production":
            raise ValueError("TIEPDAN_CLOCK_OFFSET_S is for rehearsals and tests: it must be 0 in production")
        return self

    @field_validator("media_host_addresses")
    @classmethod
    def _check_addresses(cls, value: str) -> str:
        for item in (a.strip() for a in value.split(",")):
            if item:
                try:
                    ipaddress.ip_address(item)
                except ValueError:
                    raise ValueError(f"TIEPDAN_MEDIA_HOST_ADDRESSES: {item!r} is not an IP address") from None
        return value

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tiepdan.db').resolve()}"

    @cached_property
    def resolved_keyring_path(self) -> Path:
        return self.keyring_path or self.data_dir / "keys" / "keyring.json"

    @cached_property
    def recorder_options(self) -> RecorderOptions:
        return RecorderOptions(root=self.recording_dir or self.data_dir / "recordings",
                               enabled=self.recording_enabled, retention_days=self.recording_retention_days,
                               encrypt_all=self.recording_encrypt_all)

    @cached_property
    def document_options(self) -> DocumentOptions:
        """The minutes' document options; the PIN from ``signer_pin`` or the first line of ``signer_pin_file``."""
        secret = self.signer_pin.get_secret_value() if self.signer_pin is not None else None
        if secret is None and self.signer_pin_file is not None:
            lines = self.signer_pin_file.read_text("utf-8").splitlines()
            secret = lines[0] if lines else ""
        return DocumentOptions(
            directory=self.documents_dir or self.data_dir / "documents", signer=self.signer,
            pkcs12_path=self.signer_pkcs12_path, pkcs11_module=self.signer_pkcs11_module,
            pkcs11_token_label=self.signer_pkcs11_token_label, pkcs11_key_label=self.signer_pkcs11_key_label,
            secret=secret, public_url=self.public_url or f"http://{self.host}:{self.port}",
            location=self.documents_location, issuers_file=self.issuers_file)

    @cached_property
    def token_options(self) -> TokenOptions:
        return TokenOptions(issuer=self.token_issuer, audience=self.token_audience, ttl_s=self.token_ttl_s)
