"""Cryptographic primitives of the control plane (no database access here).

- KEK: the key-encryption key, loaded once at start-up (`load_kek`).
- DEK: one random data-encryption key per zone, stored wrapped by the KEK
  (`wrap_dek` / `unwrap_dek` / `rewrap_dek`), AES-256-GCM with the zone id as associated data.
- Secrets under a DEK: `encrypt` / `decrypt` (bytes) and `encrypt_json` / `decrypt_json`;
  provider secrets use `str(provider_id)` as associated data.
- Application client secrets: argon2id hashes (`SecretHasher`).
- Admin tokens: `cpk_…` strings stored as SHA-256 hex.
- Zone signing keys: Ed25519, sealed under the zone DEK, published as JWKs, used for compact
  JWS (`sign_jws`).

Every AES-GCM blob produced here is `nonce (12 bytes) || ciphertext || tag (16 bytes)`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import argon2
import msgspec
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from controlplane.errors import OperatorError

__all__ = [
    "ADMIN_TOKEN_PREFIX",
    "CLIENT_SECRET_PREFIX",
    "DecryptionError",
    "Kek",
    "KekError",
    "SecretHasher",
    "decrypt",
    "decrypt_json",
    "encrypt",
    "encrypt_json",
    "generate_admin_token",
    "generate_client_secret",
    "hash_admin_token",
    "kek_from_file",
    "key_id_for",
    "load_kek",
    "looks_like_admin_token",
    "new_dek",
    "new_signing_key",
    "public_jwk",
    "rewrap_dek",
    "seal_signing_key",
    "sign_jws",
    "unseal_signing_key",
    "unwrap_dek",
    "wrap_dek",
]

KEY_SIZE = 32
NONCE_SIZE = 12
_TAG_SIZE = 16

ADMIN_TOKEN_PREFIX = "cpk_"
CLIENT_SECRET_PREFIX = "cs_"
_ADMIN_TOKEN_RE = re.compile(r"cpk_[A-Za-z0-9_-]{43}")


class KekError(OperatorError):
    """The KEK could not be loaded; the message is one line and never contains key material."""


class DecryptionError(Exception):
    """A blob could not be decrypted: wrong key, wrong associated data, or tampered."""


# --------------------------------------------------------------------------- helpers


def _b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_any(text: str) -> bytes:
    """Decode standard or url-safe base64, padding optional; raises `ValueError`."""
    compact = "".join(text.split())
    if not compact or not re.fullmatch(r"[A-Za-z0-9+/_-]+={0,2}", compact):
        raise ValueError("not base64")
    compact = compact.rstrip("=").translate(str.maketrans("-_", "+/"))
    if len(compact) % 4 == 1:
        raise ValueError("not base64")
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None


def _aad(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _check_key(key: bytes, what: str) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError(f"{what} must be {KEY_SIZE} bytes")


# --------------------------------------------------------------------------- KEK


@dataclass(frozen=True)
class Kek:
    """A 32-byte key-encryption key; `key_id` identifies it without revealing it."""

    key: bytes = field(repr=False)
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        _check_key(self.key, "KEK")
        digest = hashlib.sha256(b"caracal-kek:" + self.key).hexdigest()
        object.__setattr__(self, "key_id", digest[:16])


def _kek_from_text(text: str, variable: str) -> Kek:
    try:
        raw = _b64_any(text)
    except ValueError:
        raise KekError(f"{variable} is not valid base64") from None
    if len(raw) != KEY_SIZE:
        raise KekError(f"{variable} must decode to {KEY_SIZE} bytes, got {len(raw)}")
    return Kek(raw)


def kek_from_file(path: Path, label: str) -> Kek:
    """Read a KEK file: base64 text (whitespace ignored) or exactly 32 raw bytes.

    Base64 is tried first; 32 base64 characters decode to 24 bytes, so a raw 32-byte key is
    never mistaken for base64.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KekError(
            f"{label}: cannot read {path}: {exc.strerror or type(exc).__name__}"
        ) from None
    try:
        raw = _b64_any(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raw = b""
    if len(raw) == KEY_SIZE:
        return Kek(raw)
    if len(data) == KEY_SIZE:
        return Kek(data)
    raise KekError(f"{label} must hold {KEY_SIZE} raw bytes or their base64 encoding ({path})")


def _write_new_kek(path: Path) -> Kek | None:
    """Create `path` (mode 0600) holding a new base64 KEK; None if it already exists.

    The key is written to a temporary file and hard-linked into place, so concurrent
    starters never read a half-written file and exactly one of them wins.
    """
    kek = Kek(secrets.token_bytes(KEY_SIZE))
    content = base64.b64encode(kek.key) + b"\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return None
        except OSError:  # file system without hard links: exclusive create instead
            try:
                fd2 = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return None
            with os.fdopen(fd2, "wb") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
    finally:
        tmp.unlink(missing_ok=True)
    return kek


def _print_capture_hint(kek: Kek, path: Path) -> None:
    """Tell the operator, once, how to pin the generated KEK (stderr only, never logging)."""
    print(
        "\n".join(
            [
                f"caracal: generated a new key-encryption key (KEK) in {path} (id {kek.key_id}).",
                "caracal: every stored secret depends on it; losing it makes them unreadable.",
                "caracal: pin it now: copy the file's content into your secret store and pass it",
                f'caracal:   as CARACAL_KEK (base64, e.g. CARACAL_KEK="$(cat {path})"),',
                f"caracal:   or keep the file and set CARACAL_KEK_FILE={path}",
                "caracal: the key itself is never printed or logged; this hint is shown once.",
            ]
        ),
        file=sys.stderr,
        flush=True,
    )


def load_kek(env_value: str | None, file_path: str | None, data_dir: Path, production: bool) -> Kek:
    """Load the KEK: `CARACAL_KEK` (base64) > `CARACAL_KEK_FILE` > `data_dir/kek`.

    Empty values count as unset. `CARACAL_KEK` is standard or url-safe base64 (padding
    optional) of exactly 32 bytes. `CARACAL_KEK_FILE` holds base64 text (surrounding
    whitespace ignored) or exactly 32 raw bytes. Without either, production raises; otherwise
    `data_dir/kek` is reused if present, else generated (mode 0600) and a one-time capture
    hint is printed to stderr. Raises `KekError` with a one-line message naming the source.
    """
    if env_value is not None and env_value.strip():
        return _kek_from_text(env_value, "CARACAL_KEK")
    if file_path is not None and file_path.strip():
        return kek_from_file(Path(file_path).expanduser(), "CARACAL_KEK_FILE")
    if production:
        raise KekError("CARACAL_ENV=production requires CARACAL_KEK or CARACAL_KEK_FILE")
    path = Path(data_dir) / "kek"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            kek = _write_new_kek(path)
            if kek is not None:
                _print_capture_hint(kek, path)
                return kek
    except OSError as exc:
        raise KekError(f"cannot create KEK file {path}: {exc.strerror or exc}") from None
    return kek_from_file(path, "generated KEK file")


# --------------------------------------------------------------------------- AES-GCM


def encrypt(dek: bytes, plaintext: bytes, aad: bytes | str) -> bytes:
    """AES-256-GCM encrypt under `dek`; returns `nonce || ciphertext || tag`.

    `aad` (bytes, or str encoded as UTF-8) is authenticated, not stored: the same value must
    be given to `decrypt`.
    """
    _check_key(dek, "DEK")
    nonce = secrets.token_bytes(NONCE_SIZE)
    return nonce + AESGCM(dek).encrypt(nonce, plaintext, _aad(aad))


def decrypt(dek: bytes, blob: bytes, aad: bytes | str) -> bytes:
    """Inverse of `encrypt`; raises `DecryptionError` on wrong key, wrong aad or tampering."""
    _check_key(dek, "DEK")
    if len(blob) < NONCE_SIZE + _TAG_SIZE:
        raise DecryptionError("ciphertext too short")
    try:
        return AESGCM(dek).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], _aad(aad))
    except InvalidTag:
        raise DecryptionError("decryption failed (wrong key, wrong context or tampered)") from None


def encrypt_json(dek: bytes, value: Any, aad: bytes | str) -> bytes:
    """Encrypt any JSON-encodable value (string, number, object, …) under `dek`."""
    return encrypt(dek, msgspec.json.encode(value), aad)


def decrypt_json(dek: bytes, blob: bytes, aad: bytes | str) -> Any:
    """Inverse of `encrypt_json`; raises `DecryptionError`."""
    plaintext = decrypt(dek, blob, aad)
    try:
        return msgspec.json.decode(plaintext)
    except msgspec.DecodeError:
        raise DecryptionError("decrypted value is not JSON") from None


# --------------------------------------------------------------------------- DEK envelope


def new_dek() -> bytes:
    """A fresh random 32-byte zone data-encryption key."""
    return secrets.token_bytes(KEY_SIZE)


def wrap_dek(kek: Kek, dek: bytes, zone_id: str) -> bytes:
    """Wrap a zone DEK under the KEK (zone id as aad); store it with `kek.key_id`."""
    _check_key(dek, "DEK")
    return encrypt(kek.key, dek, zone_id)


def unwrap_dek(kek: Kek, wrapped: bytes, zone_id: str) -> bytes:
    """Unwrap a zone DEK; raises `DecryptionError` on wrong KEK, wrong zone or tampering."""
    dek = decrypt(kek.key, wrapped, zone_id)
    if len(dek) != KEY_SIZE:
        raise DecryptionError("unwrapped DEK has the wrong length")
    return dek


def rewrap_dek(old_kek: Kek, new_kek: Kek, wrapped: bytes, zone_id: str) -> bytes:
    """Re-wrap a DEK from `old_kek` to `new_kek` (KEK rotation); the DEK itself is unchanged."""
    return wrap_dek(new_kek, unwrap_dek(old_kek, wrapped, zone_id), zone_id)


# --------------------------------------------------------------------------- argon2id


class SecretHasher:
    """argon2id hashing of application client secrets.

    Defaults follow the OWASP minimum for argon2id: t=2 iterations, m=19456 KiB (19 MiB),
    p=1. Tests may pass cheaper parameters; hashes record their own parameters, so changing
    them later still verifies old hashes (`needs_rehash` tells when to upgrade one).
    """

    def __init__(self, time_cost: int = 2, memory_cost: int = 19456, parallelism: int = 1) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )

    def hash(self, secret: str) -> str:
        """The encoded argon2id hash (`$argon2id$v=19$m=…`) of `secret`."""
        return self._hasher.hash(secret)

    def verify(self, hash: str, secret: str) -> bool:
        """True iff `secret` matches `hash`; False on mismatch or a malformed hash."""
        try:
            return self._hasher.verify(hash, secret)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, hash: str) -> bool:
        """True if `hash` was made with parameters other than this hasher's."""
        try:
            return self._hasher.check_needs_rehash(hash)
        except InvalidHashError:
            return True


def generate_client_secret() -> str:
    """A new application client secret: `cs_` + 43 url-safe base64 chars (32 random bytes)."""
    return CLIENT_SECRET_PREFIX + secrets.token_urlsafe(32)


# --------------------------------------------------------------------------- admin tokens


def generate_admin_token() -> str:
    """A new admin token: `cpk_` + 43 url-safe base64 chars, no padding (32 random bytes)."""
    return ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_admin_token(token: str) -> str:
    """The stored form of an admin token: SHA-256 of its UTF-8 bytes, lowercase hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_admin_token(s: str) -> bool:
    """Cheap format check: exactly `cpk_` followed by 43 url-safe base64 characters."""
    return isinstance(s, str) and _ADMIN_TOKEN_RE.fullmatch(s) is not None


# --------------------------------------------------------------------------- Ed25519


def new_signing_key() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as (raw 32-byte private key, raw 32-byte public key)."""
    key = Ed25519PrivateKey.generate()
    return key.private_bytes_raw(), key.public_key().public_bytes_raw()


def _signing_aad(zone_id: str, kid: str) -> bytes:
    # JSON array: unambiguous whatever characters the zone id or kid contain.
    return msgspec.json.encode(["caracal-signing-key", zone_id, kid])


def seal_signing_key(dek: bytes, private_raw: bytes, zone_id: str, kid: str) -> bytes:
    """Encrypt a raw private key under the zone DEK, bound to its zone and kid."""
    _check_key(private_raw, "Ed25519 private key")
    return encrypt(dek, private_raw, _signing_aad(zone_id, kid))


def unseal_signing_key(dek: bytes, sealed: bytes, zone_id: str, kid: str) -> bytes:
    """Inverse of `seal_signing_key`; raises `DecryptionError` on any mismatch."""
    private_raw = decrypt(dek, sealed, _signing_aad(zone_id, kid))
    if len(private_raw) != KEY_SIZE:
        raise DecryptionError("unsealed signing key has the wrong length")
    return private_raw


def key_id_for(public_raw: bytes) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of an Ed25519 public key."""
    _check_key(public_raw, "Ed25519 public key")
    canonical = '{"crv":"Ed25519","kty":"OKP","x":"' + _b64url(public_raw) + '"}'
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def public_jwk(public_raw: bytes, kid: str) -> dict[str, str]:
    """The public JWK of an Ed25519 key as published in the JWKS."""
    _check_key(public_raw, "Ed25519 public key")
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(public_raw),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    }


@functools.lru_cache(maxsize=256)
def _private_key(private_raw: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(private_raw)


def sign_jws(
    private_raw: bytes,
    kid: str,
    payload: dict[str, Any],
    extra_header: dict[str, Any] | None = None,
) -> str:
    """Compact JWS (`alg: EdDSA`) over `payload` encoded as JSON with sorted keys, no spaces.

    The payload may hold anything msgspec encodes (UUIDs, datetimes, Structs);
    `extra_header` adds protected header parameters.
    """
    fields = {**(extra_header or {}), "alg": "EdDSA", "kid": kid, "typ": "JWT"}
    header = msgspec.json.encode(fields, order="sorted")
    body = msgspec.json.encode(payload, order="sorted")
    signing_input = f"{_b64url(header)}.{_b64url(body)}"
    signature = _private_key(private_raw).sign(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64url(signature)}"
