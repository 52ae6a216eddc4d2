"""What a stock OPA does on the wire, written from OPA's source (open-policy-agent/opa), not
from the service's code:

* ``Downloader``: ``v1/download/download.go`` — ``If-None-Match`` with the last ETag (empty
  after an error), ``Prefer: modes=snapshot,delta`` plus ``;wait=N`` while long polling is on
  (it stays on only after a 200 whose Content-Type is ``application/vnd.openpolicyagent.bundles``,
  and is kept over a 304), 304 keeps the bundle (and takes the 304's ETag, else the old
  one), any other status is an error that clears the ETag and is retried;
* ``verify_bundle``: ``v1/bundle/{bundle,verify,hash}.go`` — ``.signatures.json`` holds
  exactly one JWT; the key id is the configured ``keyid``, else the JWT's ``kid``; the
  payload's ``scope`` must equal the configured one (empty); every file of the tarball but
  ``.signatures.json`` must be listed with a matching digest and every listed file must be
  in the tarball; ``.manifest``/``data.json`` digests are over the parsed document walked
  with sorted keys and Go's JSON encoding of scalars (numbers as written);
* ``log_chunk``: ``v1/plugins/logs/encoder.go`` — one gzip stream of ``[`` + events joined by
  ``,`` + ``]``, each event as ``json.Marshal`` writes ``EventV1``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

BUNDLE_MEDIA_TYPE = "application/vnd.openpolicyagent.bundles"
_STRUCTURED = {"data.json", "data.yaml", "signatures.json", ".manifest"}


class BundleError(Exception):
    """OPA would refuse the bundle (the message says why, as OPA's error does)."""


# -- hashing (hash.go) ---------------------------------------------------------------------


class _Num(str):
    pass


def _go_scalar(value: Any) -> str:
    if isinstance(value, _Num):
        return str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    # encoding/json with SetEscapeHTML(false): UTF-8 kept, \u2028/\u2029 escaped.
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _walk(value: Any, out: list[bytes]) -> None:
    if isinstance(value, dict):
        out.append(b"{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode())):
            if i:
                out.append(b",")
            out.append(_go_scalar(key).encode())
            out.append(b":")
            _walk(value[key], out)
        out.append(b"}")
    elif isinstance(value, list):
        out.append(b"[")
        for i, item in enumerate(value):
            if i:
                out.append(b",")
            _walk(item, out)
        out.append(b"]")
    else:
        out.append(_go_scalar(value).encode())


def opa_file_hash(name: str, content: bytes) -> str:
    """Hex SHA-256 of a bundle file as OPA's ``VerifyBundleFile`` computes it."""
    if name.rsplit("/", 1)[-1] in _STRUCTURED:
        parsed = json.loads(content, parse_int=_Num, parse_float=_Num)
        out: list[bytes] = []
        _walk(parsed, out)
        return hashlib.sha256(b"".join(out)).hexdigest()
    return hashlib.sha256(content).hexdigest()


# -- verification (verify.go, bundle.go) -----------------------------------------------------


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def read_tarball(body: bytes) -> dict[str, bytes]:
    """The files of a gzipped bundle tarball, by path without the leading ``/``."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(body)), mode="r:") as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                files[member.name.lstrip("/")] = extracted.read()
    return files


def verify_bundle(
    body: bytes, keys: dict[str, str], *, keyid: str = "", scope: str = ""
) -> dict[str, bytes]:
    """Check a bundle as OPA does with ``keys`` (keyid -> ES256 PEM); return its files."""
    files = read_tarball(body)
    signatures_raw = files.pop(".signatures.json", None)
    if signatures_raw is None:
        if keyid:
            raise BundleError("bundle missing .signatures.json file")
        return files
    signatures = json.loads(signatures_raw).get("signatures") or []
    if len(signatures) != 1:
        raise BundleError(".signatures.json: expected exactly one JWT")
    token = signatures[0]
    header_part, payload_part, signature_part = token.split(".")
    header = json.loads(_b64decode(header_part))
    payload = json.loads(_b64decode(payload_part))
    key_id = keyid or header.get("kid") or payload.get("keyid") or ""
    if not key_id:
        raise BundleError("verification key ID is empty")
    if key_id not in keys:
        raise BundleError(f"verification key corresponding to ID {key_id} not found")
    if header.get("alg") != "ES256":
        raise BundleError(f"unexpected alg {header.get('alg')}")
    public = serialization.load_pem_public_key(keys[key_id].encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    raw = _b64decode(signature_part)
    if len(raw) != 64:
        raise BundleError("bad ES256 signature length")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, f"{header_part}.{payload_part}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise BundleError("failed to verify message: could not verify signature") from None
    if (payload.get("scope") or "") != scope:
        raise BundleError("scope mismatch")
    listed = {f["name"]: f for f in payload.get("files") or []}
    for name, content in files.items():
        entry = listed.pop(name, None)
        if entry is None:
            raise BundleError(f"file {name} not included in bundle signature")
        if entry.get("algorithm") != "SHA-256":
            raise BundleError(f"unexpected hashing algorithm for {name}")
        if entry["hash"] != opa_file_hash(name, content):
            raise BundleError(f"{name}: digest mismatch")
    if listed:
        raise BundleError(
            f"file(s) {sorted(listed)} specified in bundle signatures but not found in the"
            " target bundle"
        )
    return files


# -- the downloader (download.go) --------------------------------------------------------------


@dataclass
class Downloader:
    """One OPA bundle downloader for ``{base}/bundles/active``."""

    http: httpx.Client
    url: str
    keys: dict[str, str]
    keyid: str = ""
    long_polling_timeout_seconds: int | None = None
    etag: str = ""
    files: dict[str, bytes] | None = None
    long_polling: bool = field(init=False)
    errors: int = 0

    def __post_init__(self) -> None:
        self.long_polling = self.long_polling_timeout_seconds is not None

    def headers(self) -> dict[str, str]:
        preferences = ["modes=snapshot,delta"]
        if self.long_polling and self.long_polling_timeout_seconds is not None:
            preferences.append(f"wait={self.long_polling_timeout_seconds}")
        return {"If-None-Match": self.etag, "Prefer": ";".join(preferences)}

    def one_shot(self, timeout: float = 30) -> int:
        """One download; the status code (an error clears the ETag, as OPA does)."""
        try:
            response = self.http.get(self.url, headers=self.headers(), timeout=timeout)
        except httpx.TransportError:
            self.etag = ""
            self.errors += 1
            return 0
        if response.status_code == 200:
            self.files = verify_bundle(response.content, self.keys, keyid=self.keyid)
            self.etag = response.headers.get("ETag", "")
            self.long_polling = response.headers.get("Content-Type") == BUNDLE_MEDIA_TYPE
        elif response.status_code == 304:
            self.etag = response.headers.get("ETag") or self.etag
        else:
            self.etag = ""
            self.errors += 1
        return response.status_code

    @property
    def revision(self) -> str | None:
        if self.files is None:
            return None
        return json.loads(self.files[".manifest"])["revision"]


# -- decision-log chunks (encoder.go) -------------------------------------------------------


def rfc3339_nano(moment: datetime) -> str:
    """``time.Time`` as Go's JSON writes it (RFC 3339 with nanoseconds, trailing zeros cut)."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}000".rstrip("0")
    return text + (f".{fraction}" if fraction else "") + "Z"


def decision_event(
    input: Any,
    result: Any,
    *,
    revision: str,
    instance_id: str = "8f1d6c1e-opa-1",
    decision_id: str | None = None,
    moment: datetime | None = None,
    req_id: int = 1,
) -> dict[str, Any]:
    """A decision event with EventV1's fields in its order (omitempty ones only when set)."""
    return {
        "labels": {"id": instance_id, "version": "1.4.2"},
        "decision_id": decision_id or str(uuid.uuid4()),
        "bundles": {"authz": {"revision": revision}},
        "path": "caracal/authz/result",
        "input": input,
        "result": result,
        "requested_by": "127.0.0.1:51234",
        "timestamp": rfc3339_nano(moment or datetime.now(UTC)),
        "metrics": {"timer_rego_query_eval_ns": 41000, "timer_server_handler_ns": 90000},
        "req_id": req_id,
    }


def log_chunk(events: list[dict[str, Any]]) -> bytes:
    """One upload body as the chunk encoder writes it."""
    encoded = b"[" + b",".join(json.dumps(e, separators=(",", ":")).encode() for e in events)
    return gzip.compress(encoded + b"]")


def log_headers(token: str) -> dict[str, str]:
    """The headers OPA's rest client sends with a decision-log upload."""
    return {
        "Authorization": f"Bearer {token}",
        "Content-Encoding": "gzip",
        "Content-Type": "application/json",
    }


def status_report(
    instance_id: str, revision: str | None, *, code: str | None = None, message: str = ""
) -> dict[str, Any]:
    """A status report as OPA's status plugin posts it."""
    bundle: dict[str, Any] = {
        "name": "authz",
        "active_revision": revision or "",
        "last_successful_download": rfc3339_nano(datetime.now(UTC)),
        "last_successful_activation": (
            rfc3339_nano(datetime.now(UTC)) if revision else "0001-01-01T00:00:00Z"
        ),
        "metrics": {"timer_bundle_request_ns": 1200000},
    }
    if code:
        bundle.update(code=code, message=message, errors=[{"code": code, "message": message}])
    return {
        "labels": {"id": instance_id, "version": "1.4.2"},
        "bundles": {"authz": bundle},
        "plugins": {"bundle": {"state": "OK"}, "decision_logs": {"state": "OK"}},
        "metrics": {"prometheus": {}},
    }
