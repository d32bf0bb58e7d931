"""The minutes service's options: frozen dataclasses the composition root fills from the settings
(``tiepdan/settings.py``); nothing here reads the environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["DocumentOptions", "SignerKind"]

SignerKind = Literal["none", "pkcs12", "pkcs11"]


@dataclass(frozen=True)
class DocumentOptions:
    """Where the signed documents live and who signs them.

    ``signer`` ``none``: documents stay unsigned drafts until a signer is configured. ``pkcs12``: the key
    and certificate of ``pkcs12_path`` (passphrase ``secret``). ``pkcs11``: the key ``pkcs11_key_label`` on
    the token ``pkcs11_token_label`` through the module ``pkcs11_module`` (user PIN ``secret``). ``secret``
    is never logged nor shown (``repr`` leaves it out). ``public_url`` is the console's address for the QR
    code of the verification page (``<public_url>/xac-minh/<id>``)."""

    directory: Path
    signer: SignerKind = "none"
    pkcs12_path: Path | None = None
    pkcs11_module: str | None = None
    pkcs11_token_label: str | None = None
    pkcs11_key_label: str | None = None
    secret: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    location: str = "Việt Nam"
    issuers_file: Path | None = None     # the issuing bodies and leaders' names (minutes.issuing.load_issuer_book)

    def __repr__(self) -> str:
        return (f"DocumentOptions(directory={str(self.directory)!r}, signer={self.signer!r}, "
                f"pkcs12_path={str(self.pkcs12_path) if self.pkcs12_path else None!r}, "
                f"pkcs11_module={self.pkcs11_module!r}, pkcs11_token_label={self.pkcs11_token_label!r}, "
                f"pkcs11_key_label={self.pkcs11_key_label!r}, public_url={self.public_url!r}, "
                f"issuers_file={str(self.issuers_file) if self.issuers_file else None!r})")

    def __post_init__(self) -> None:
        if self.signer == "pkcs12" and self.pkcs12_path is None:
            raise ValueError("the pkcs12 signer needs a PKCS#12 file")
        if self.signer == "pkcs11" and not (self.pkcs11_module and self.pkcs11_token_label
                                            and self.pkcs11_key_label):
            raise ValueError("the pkcs11 signer needs the module, the token label and the key label")
