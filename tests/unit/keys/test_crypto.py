"""Tests for controlplane.keys.crypto (no database)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import stat
import uuid
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from controlplane.keys import crypto
from controlplane.keys.crypto import (
    DecryptionError,
    Kek,
    KekError,
    SecretHasher,
    decrypt,
    decrypt_json,
    encrypt,
    encrypt_json,
    generate_admin_token,
    generate_client_secret,
    hash_admin_token,
    key_id_for,
    load_kek,
    looks_like_admin_token,
    new_dek,
    new_signing_key,
    public_jwk,
    rewrap_dek,
    seal_signing_key,
    sign_jws,
    unseal_signing_key,
    unwrap_dek,
    wrap_dek,
)

# RFC 8037 Appendix A.1 / A.3.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def key_bytes() -> bytes:
    return os.urandom(32)


# --------------------------------------------------------------------------- KEK


def test_kek_id_is_prefixed_sha256_and_repr_hides_key(key_bytes: bytes) -> None:
    kek = Kek(key_bytes)
    assert kek.key_id == hashlib.sha256(b"caracal-kek:" + key_bytes).hexdigest()[:16]
    assert key_bytes.hex() not in repr(kek)
    assert str(key_bytes) not in repr(kek)
    with pytest.raises(ValueError):
        Kek(b"short")


def test_env_wins_over_file_and_data_dir(tmp_path: Path, key_bytes: bytes) -> None:
    other = tmp_path / "kek.b64"
    other.write_text(base64.b64encode(os.urandom(32)).decode())
    env = base64.b64encode(key_bytes).decode()
    kek = load_kek(env, str(other), tmp_path / "data", production=True)
    assert kek.key == key_bytes
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "encode",
    [
        lambda b: base64.b64encode(b).decode(),
        lambda b: base64.urlsafe_b64encode(b).decode(),
        lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="),
        lambda b: "  " + base64.b64encode(b).decode() + "\n",
    ],
    ids=["standard", "urlsafe", "urlsafe-nopad", "whitespace"],
)
def test_env_accepts_base64_variants(encode, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Bytes that make the standard and url-safe alphabets differ (+/ vs -_).
    raw = bytes([0xFB, 0xFF, 0xBF] * 10 + [0xFE, 0xFF])
    assert load_kek(encode(raw), None, tmp_path, production=False).key == raw


def test_file_wins_over_generated(tmp_path: Path, key_bytes: bytes) -> None:
    data_dir = tmp_path / "data"
    generated = load_kek(None, None, data_dir, production=False)
    kek_file = tmp_path / "kek.b64"
    kek_file.write_text(base64.b64encode(key_bytes).decode() + "\n")
    kek = load_kek(None, str(kek_file), data_dir, production=False)
    assert kek.key == key_bytes
    assert kek.key_id != generated.key_id


def test_file_with_raw_32_bytes(tmp_path: Path) -> None:
    # Raw bytes including whitespace bytes at the edges must not be stripped.
    raw = b" " + os.urandom(30) + b"\n"
    kek_file = tmp_path / "kek.raw"
    kek_file.write_bytes(raw)
    assert load_kek(None, str(kek_file), tmp_path, production=True).key == raw


def test_empty_values_count_as_unset(tmp_path: Path) -> None:
    with pytest.raises(KekError, match="requires CARACAL_KEK"):
        load_kek("", "  ", tmp_path, production=True)


def test_generated_kek_is_persisted_0600_and_reused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data_dir = tmp_path / "nested" / "data"
    first = load_kek(None, None, data_dir, production=False)
    path = data_dir / "kek"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base64.b64decode(path.read_text().strip()) == first.key
    assert [p.name for p in data_dir.iterdir()] == ["kek"]  # no temp file left behind

    err = capsys.readouterr().err
    b64 = base64.b64encode(first.key).decode()
    assert b64 not in err  # the hint says how to pin the key, never the key itself
    assert "CARACAL_KEK_FILE" in err
    assert str(path) in err
    assert b64 not in caplog.text  # never through logging

    second = load_kek(None, None, data_dir, production=False)
    assert second == first
    assert capsys.readouterr().err == ""  # hint only when generated


def test_production_refuses_to_generate(tmp_path: Path) -> None:
    with pytest.raises(KekError) as info:
        load_kek(None, None, tmp_path, production=True)
    assert str(info.value) == "CARACAL_ENV=production requires CARACAL_KEK or CARACAL_KEK_FILE"
    assert not (tmp_path / "kek").exists()


@pytest.mark.parametrize(
    "value",
    [
        "this is not base64!!",
        base64.b64encode(b"k" * 31).decode(),
        base64.b64encode(b"k" * 33).decode(),
        "AAAAA",
    ],
    ids=["garbage", "31-bytes", "33-bytes", "impossible-length"],
)
def test_bad_env_value_names_variable_not_key(value: str, tmp_path: Path) -> None:
    with pytest.raises(KekError) as info:
        load_kek(value, None, tmp_path, production=False)
    message = str(info.value)
    assert "CARACAL_KEK" in message
    assert "\n" not in message
    assert value not in message
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    assert not (tmp_path / "kek").exists()  # no silent fallback


def test_bad_file_names_variable_not_key(tmp_path: Path) -> None:
    content = base64.b64encode(b"s" * 20).decode()
    kek_file = tmp_path / "kek"
    kek_file.write_text(content)
    with pytest.raises(KekError) as info:
        load_kek(None, str(kek_file), tmp_path / "data", production=False)
    assert "CARACAL_KEK_FILE" in str(info.value)
    assert content not in str(info.value)

    with pytest.raises(KekError, match="CARACAL_KEK_FILE: cannot read"):
        load_kek(None, str(tmp_path / "missing"), tmp_path / "data", production=False)


def test_corrupt_generated_file_is_an_error_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "kek").write_text("garbage")
    with pytest.raises(KekError, match="generated KEK file"):
        load_kek(None, None, tmp_path, production=False)
    assert (tmp_path / "kek").read_text() == "garbage"


# --------------------------------------------------------------------------- DEK envelope


def test_dek_wrap_unwrap_round_trip() -> None:
    kek = Kek(os.urandom(32))
    dek = new_dek()
    assert len(dek) == 32 and dek != new_dek()
    wrapped = wrap_dek(kek, dek, "zone1")
    assert dek not in wrapped
    assert len(wrapped) == 12 + 32 + 16
    assert wrapped[:12] != wrap_dek(kek, dek, "zone1")[:12]  # random nonce each time
    assert unwrap_dek(kek, wrapped, "zone1") == dek


def test_dek_unwrap_failures() -> None:
    kek = Kek(os.urandom(32))
    wrapped = wrap_dek(kek, new_dek(), "zone1")
    with pytest.raises(DecryptionError):
        unwrap_dek(kek, wrapped, "zone2")
    with pytest.raises(DecryptionError):
        unwrap_dek(Kek(os.urandom(32)), wrapped, "zone1")
    for i in (0, 12, len(wrapped) - 1):
        tampered = bytearray(wrapped)
        tampered[i] ^= 0x01
        with pytest.raises(DecryptionError):
            unwrap_dek(kek, bytes(tampered), "zone1")
    with pytest.raises(DecryptionError):
        unwrap_dek(kek, wrapped[:20], "zone1")


def test_rewrap_dek_moves_to_new_kek() -> None:
    old, new = Kek(os.urandom(32)), Kek(os.urandom(32))
    dek = new_dek()
    wrapped = wrap_dek(old, dek, "zone1")
    rewrapped = rewrap_dek(old, new, wrapped, "zone1")
    assert unwrap_dek(new, rewrapped, "zone1") == dek
    with pytest.raises(DecryptionError):
        unwrap_dek(old, rewrapped, "zone1")
    with pytest.raises(DecryptionError):
        rewrap_dek(new, old, wrapped, "zone1")  # wrong old KEK


# --------------------------------------------------------------------------- secrets under a DEK


def test_encrypt_decrypt_bytes() -> None:
    dek = new_dek()
    blob = encrypt(dek, b"hello", b"ctx")
    assert b"hello" not in blob
    assert decrypt(dek, blob, b"ctx") == b"hello"
    assert decrypt(dek, blob, "ctx") == b"hello"  # str aad is its UTF-8 bytes
    with pytest.raises(DecryptionError):
        decrypt(dek, blob, b"other")
    with pytest.raises(DecryptionError):
        decrypt(new_dek(), blob, b"ctx")


@pytest.mark.parametrize(
    "value",
    ["s3cr3t", 42, 1.5, True, None, ["a", 1], {"client_secret": "x", "nested": {"n": [1, 2]}}],
)
def test_encrypt_json_round_trip_with_provider_id_aad(value: object) -> None:
    dek = new_dek()
    provider_id = str(uuid.uuid4())
    blob = encrypt_json(dek, value, provider_id)
    assert decrypt_json(dek, blob, provider_id) == value
    with pytest.raises(DecryptionError):
        decrypt_json(dek, blob, str(uuid.uuid4()))  # secret moved to another provider


def test_encrypt_json_unicode() -> None:
    dek = new_dek()
    assert decrypt_json(dek, encrypt_json(dek, "pässwörd ✓", b"p"), b"p") == "pässwörd ✓"


# --------------------------------------------------------------------------- argon2id


def test_secret_hasher_defaults_and_verify() -> None:
    hasher = SecretHasher()
    encoded = hasher.hash("cs_example")
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hasher.verify(encoded, "cs_example") is True
    assert hasher.verify(encoded, "cs_wrong") is False
    assert hasher.verify("not-a-hash", "cs_example") is False
    assert hasher.hash("cs_example") != encoded  # salted
    assert hasher.needs_rehash(encoded) is False


def test_secret_hasher_parameters() -> None:
    cheap = SecretHasher(time_cost=1, memory_cost=8, parallelism=1)
    encoded = cheap.hash("x")
    assert "$m=8,t=1,p=1$" in encoded
    assert cheap.verify(encoded, "x")
    assert SecretHasher().verify(encoded, "x")  # parameters are read from the hash
    assert SecretHasher().needs_rehash(encoded)


# --------------------------------------------------------------------------- token formats


def test_client_secret_format() -> None:
    secret = generate_client_secret()
    assert secret.startswith("cs_") and len(secret) == 3 + 43
    assert len(b64url_decode(secret[3:])) == 32
    assert generate_client_secret() != secret


def test_admin_token_format_and_hash() -> None:
    token = generate_admin_token()
    assert token.startswith("cpk_") and len(token) == 4 + 43
    assert "=" not in token
    assert len(b64url_decode(token[4:])) == 32
    assert looks_like_admin_token(token)
    assert generate_admin_token() != token
    assert hash_admin_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert len(hash_admin_token(token)) == 64


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "cpk_",
        "cpk_" + "A" * 42,
        "cpk_" + "A" * 44,
        "cpk_" + "A" * 42 + "=",
        "cpk_" + "A" * 42 + "+",
        "cpk_" + "A" * 43 + "\n",
        "CPK_" + "A" * 43,
        "cs_" + "A" * 43,
        "Bearer cpk_" + "A" * 43,
    ],
)
def test_looks_like_admin_token_rejects(candidate: str) -> None:
    assert not looks_like_admin_token(candidate)


def test_looks_like_admin_token_accepts_urlsafe_chars() -> None:
    assert looks_like_admin_token("cpk_" + "-_aZ09" * 7 + "A")


# --------------------------------------------------------------------------- Ed25519 / JWS


def test_key_id_matches_rfc8037_thumbprint() -> None:
    assert key_id_for(b64url_decode(RFC8037_X)) == RFC8037_THUMBPRINT


def test_rfc8037_private_key_gives_rfc_public_key() -> None:
    private = Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC8037_D))
    assert base64.urlsafe_b64encode(private.public_key().public_bytes_raw()).rstrip(b"=") == (
        RFC8037_X.encode()
    )


def test_new_signing_key_pair() -> None:
    private_raw, public_raw = new_signing_key()
    assert len(private_raw) == 32 and len(public_raw) == 32
    derived = Ed25519PrivateKey.from_private_bytes(private_raw).public_key().public_bytes_raw()
    assert derived == public_raw
    assert new_signing_key()[0] != private_raw


def test_public_jwk_shape() -> None:
    public_raw = b64url_decode(RFC8037_X)
    jwk = public_jwk(public_raw, RFC8037_THUMBPRINT)
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": RFC8037_X,
        "kid": RFC8037_THUMBPRINT,
        "alg": "EdDSA",
        "use": "sig",
    }


def test_seal_unseal_signing_key_binds_zone_and_kid() -> None:
    dek = new_dek()
    private_raw, public_raw = new_signing_key()
    kid = key_id_for(public_raw)
    sealed = seal_signing_key(dek, private_raw, "zone1", kid)
    assert private_raw not in sealed
    assert unseal_signing_key(dek, sealed, "zone1", kid) == private_raw
    with pytest.raises(DecryptionError):
        unseal_signing_key(dek, sealed, "zone2", kid)
    with pytest.raises(DecryptionError):
        unseal_signing_key(dek, sealed, "zone1", key_id_for(new_signing_key()[1]))
    with pytest.raises(DecryptionError):
        unseal_signing_key(new_dek(), sealed, "zone1", kid)
    # A sealed key is not a provider secret under the same DEK and vice versa.
    with pytest.raises(DecryptionError):
        decrypt(dek, sealed, "zone1")


def test_sign_jws_verifies_with_jwk_alone() -> None:
    private_raw, public_raw = new_signing_key()
    kid = key_id_for(public_raw)
    jwk = public_jwk(public_raw, kid)
    payload = {"decision": "allow", "reasons": [], "b": {"z": 1, "a": "é"}, "request_id": "r1"}

    token = sign_jws(private_raw, kid, payload)
    header_b64, payload_b64, signature_b64 = token.split(".")
    assert "=" not in token

    header_bytes = b64url_decode(header_b64)
    assert (
        header_bytes
        == json.dumps({"alg": "EdDSA", "kid": kid, "typ": "JWT"}, separators=(",", ":")).encode()
    )
    header = json.loads(header_bytes)
    assert header["kid"] == jwk["kid"] == kid

    payload_bytes = b64url_decode(payload_b64)
    assert json.loads(payload_bytes) == payload
    assert payload_bytes == json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")

    public_key = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    public_key.verify(b64url_decode(signature_b64), signing_input)

    tampered_payload = base64.urlsafe_b64encode(b'{"decision":"deny"}').rstrip(b"=").decode()
    with pytest.raises(InvalidSignature):
        public_key.verify(
            b64url_decode(signature_b64), f"{header_b64}.{tampered_payload}".encode("ascii")
        )
    other_public = Ed25519PublicKey.from_public_bytes(new_signing_key()[1])
    with pytest.raises(InvalidSignature):
        other_public.verify(b64url_decode(signature_b64), signing_input)


def test_sign_jws_caches_loaded_private_key() -> None:
    private_raw, public_raw = new_signing_key()
    kid = key_id_for(public_raw)
    before = crypto._private_key.cache_info()
    sign_jws(private_raw, kid, {"n": 1})
    sign_jws(private_raw, kid, {"n": 2})
    after = crypto._private_key.cache_info()
    assert after.misses == before.misses + 1
    assert after.hits == before.hits + 1


def test_sign_jws_encodes_uuids() -> None:
    private_raw, public_raw = new_signing_key()
    value = uuid.uuid4()
    token = sign_jws(private_raw, key_id_for(public_raw), {"policy_set_version_id": value})
    assert json.loads(b64url_decode(token.split(".")[1])) == {"policy_set_version_id": str(value)}
