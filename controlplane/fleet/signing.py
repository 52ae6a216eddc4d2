"""OPA bundle signatures: the ES256 bundle key, file digests as OPA computes them, the JWT.

OPA (``v1/bundle/verify.go``, ``hash.go``) verifies a bundle's ``.signatures.json``: exactly
one compact JWS whose payload lists ``files: [{name, hash, algorithm}]``; every file of the
tarball but ``.signatures.json`` must be listed and every listed file must be present. A
``.rego`` file is hashed as its raw bytes; a structured file (``.manifest``, ``data.json``) is
parsed (numbers kept as written) and hashed by a walk that writes ``{``, each key in sorted
order as a JSON string, ``:``, the value, ``,`` between items, ``}`` (arrays likewise with
``[``/``]``), and every scalar as Go's ``encoding/json`` writes it without HTML escaping.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import msgspec
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from controlplane.keys import crypto

__all__ = [
    "ALGORITHM",
    "HASH_ALGORITHM",
    "BundleSigningKey",
    "file_digest",
    "new_bundle_key",
    "open_bundle_key",
    "sign_files",
    "structured_digest",
]

ALGORITHM = "ES256"
HASH_ALGORITHM = "SHA-256"
#: Files OPA parses before hashing (``bundle.IsStructuredDoc``), by base name.
_STRUCTURED = frozenset((".manifest", "data.json", "data.yaml", "signatures.json"))


class BundleSigningKey(msgspec.Struct, frozen=True):
    """A zone's bundle-signing key: ``kid`` (the zone id), public PEM, private key."""

    kid: str
    public_pem: str
    private: ec.EllipticCurvePrivateKey


def _aad(zone_id: str, kid: str) -> bytes:
    return msgspec.json.encode(["caracal-bundle-key", zone_id, kid])


def new_bundle_key(dek: bytes, zone_id: str, kid: str) -> tuple[str, bytes]:
    """A new P-256 key: ``(public PEM, private PKCS#8 DER sealed under the zone DEK)``."""
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return public_pem, crypto.encrypt(dek, der, _aad(zone_id, kid))


def open_bundle_key(
    dek: bytes, zone_id: str, kid: str, public_pem: str, sealed: bytes
) -> BundleSigningKey:
    """Unseal a stored key; raises ``crypto.DecryptionError`` on any mismatch."""
    der = crypto.decrypt(dek, sealed, _aad(zone_id, kid))
    private = serialization.load_der_private_key(der, password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey):  # pragma: no cover - we sealed it
        raise crypto.DecryptionError("the sealed bundle key is not an EC key")
    return BundleSigningKey(kid, public_pem, private)


# -- digests --------------------------------------------------------------------------------


def _go_string(value: str) -> str:
    """A JSON string as Go's encoder writes it with ``SetEscapeHTML(false)``: non-ASCII as
    UTF-8, U+2028/U+2029 escaped, control characters as ``\\n``/``\\r``/``\\t``/``\\b``/``\\f``
    (Go 1.22 and later, which every OPA 1.x is built with) or ``\\u00XX`` — which is
    Python's ``json.dumps(ensure_ascii=False)`` apart from U+2028/U+2029."""
    return (
        json.dumps(value, ensure_ascii=False)
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


class _Number(str):
    """A JSON number kept as written (Go's ``json.Number``)."""


def _walk(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-8"))):
            if i:
                out.append(",")
            out.append(_go_string(key))
            out.append(":")
            _walk(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _walk(item, out)
        out.append("]")
    elif isinstance(value, str) and not isinstance(value, _Number):
        out.append(_go_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    else:
        out.append(str(value))


def structured_digest(content: bytes) -> str:
    """Hex SHA-256 of a structured bundle file (``.manifest``, ``data.json``) as OPA hashes it."""
    parsed = json.loads(content, parse_float=_Number, parse_int=_Number)
    out: list[str] = []
    _walk(parsed, out)
    return hashlib.sha256("".join(out).encode("utf-8")).hexdigest()


def file_digest(name: str, content: bytes) -> str:
    """Hex SHA-256 of a bundle file as OPA checks it (structured files parsed first)."""
    if name.rsplit("/", 1)[-1] in _STRUCTURED:
        return structured_digest(content)
    return hashlib.sha256(content).hexdigest()


# -- the JWT ---------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_files(key: BundleSigningKey, files: list[tuple[str, bytes]], issued_at: int) -> bytes:
    """The ``.signatures.json`` content for ``(name, content)`` files: one ES256 JWT with
    ``kid`` = the key's kid (no ``scope``: OPA then requires none to be configured)."""
    header = msgspec.json.encode({"alg": ALGORITHM, "kid": key.kid, "typ": "JWT"})
    payload = msgspec.json.encode(
        {
            "files": [
                {"name": name, "hash": file_digest(name, content), "algorithm": HASH_ALGORITHM}
                for name, content in files
            ],
            "iat": issued_at,
        }
    )
    signing_input = f"{_b64url(header)}.{_b64url(payload)}"
    der = key.private.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    token = f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
    return msgspec.json.encode({"signatures": [token]})
