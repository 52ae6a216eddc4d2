"""A zone's active policy-set version as a signed OPA bundle (gzipped tarball).

Contents (spec/opa-fleet.md): ``/.manifest``, one module per policy version under its own
package, the generated ``caracal/authz.rego`` and ``/.signatures.json``. The ETag depends on
the zone and the set version only, so every replica of the control plane gives the same ETag
for the same active set (OPA may poll any of them) and answers without building anything.
A process keeps the bundles it built (a few per zone), so a fleet downloading a newly
activated set costs one build per process.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import tarfile
import time
from collections import OrderedDict
from dataclasses import dataclass

import msgspec

from controlplane.db.pool import Database
from controlplane.fleet.bundle_keys import bundle_key
from controlplane.fleet.rego_modules import (
    AUTHZ_MODULE_PATH,
    PolicySource,
    authz_module,
    policy_module,
)
from controlplane.fleet.signing import BundleSigningKey, sign_files
from controlplane.keys.crypto import Kek
from controlplane.pdp.evaluate import CompiledSet

__all__ = ["BUNDLE_MEDIA_TYPE", "Bundle", "BundleCache", "build_bundle", "bundle_etag"]

BUNDLE_MEDIA_TYPE = "application/vnd.openpolicyagent.bundles"
#: Bumped when the bundle layout changes, so OPA downloads it again.
_FORMAT = "caracal-bundle-1"
_CACHED_BUNDLES = 256


@dataclass(frozen=True, slots=True)
class Bundle:
    """A built bundle: the gzipped tarball and its ETag (the revision is the set version)."""

    etag: str
    revision: str
    body: bytes


def bundle_etag(zone_id: str, set_version_id: str) -> str:
    """The strong ETag of a zone's bundle for a set version (quoted, as HTTP writes it)."""
    digest = hashlib.sha256(msgspec.json.encode([_FORMAT, zone_id, set_version_id])).hexdigest()
    return f'"{digest[:40]}"'


def _manifest(zone_id: str, compiled: CompiledSet) -> bytes:
    return msgspec.json.encode(
        {
            "revision": compiled.policy_set_version_id,
            "roots": ["caracal"],
            "rego_version": 1,
            "metadata": {
                "zone_id": zone_id,
                "policy_set_id": compiled.policy_set_id,
                "policy_set_version_id": compiled.policy_set_version_id,
                "manifest_sha256": compiled.manifest_sha256,
            },
        }
    )


def bundle_files(zone_id: str, compiled: CompiledSet) -> list[tuple[str, bytes]]:
    """The bundle's files but ``.signatures.json``: ``(path without leading /, content)``."""
    policies = [
        PolicySource(p.policy_id, p.policy_version_id, p.content) for p in compiled.policies
    ]
    files: list[tuple[str, bytes]] = [(".manifest", _manifest(zone_id, compiled))]
    seen: set[str] = set()
    for policy in policies:
        if policy.policy_version_id in seen:  # a version listed twice is one module
            continue
        seen.add(policy.policy_version_id)
        path, source = policy_module(policy)
        files.append((path, source.encode("utf-8")))
    module = authz_module(compiled.policy_set_version_id, policies)
    files.append((AUTHZ_MODULE_PATH, module.encode("utf-8")))
    return files


def _tarball(files: list[tuple[str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files:
            info = tarfile.TarInfo("/" + name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def build_bundle(zone_id: str, compiled: CompiledSet, key: BundleSigningKey) -> Bundle:
    """Build and sign the bundle of ``compiled`` (CPU only)."""
    files = bundle_files(zone_id, compiled)
    signatures = sign_files(key, files, int(time.time()))
    return Bundle(
        etag=bundle_etag(zone_id, compiled.policy_set_version_id),
        revision=compiled.policy_set_version_id,
        body=_tarball([*files, (".signatures.json", signatures)]),
    )


class BundleCache:
    """The bundles this process built, by ``(zone, set version)`` (least recently used go),
    and one build at a time per bundle."""

    def __init__(self, db: Database, kek: Kek, size: int = _CACHED_BUNDLES) -> None:
        self.db = db
        self.kek = kek
        self.size = size
        self._bundles: OrderedDict[tuple[str, str], Bundle] = OrderedDict()
        self._building: dict[tuple[str, str], asyncio.Future[Bundle]] = {}
        self._keys: dict[str, BundleSigningKey] = {}

    async def get(self, zone_id: str, compiled: CompiledSet) -> Bundle:
        """The bundle of ``compiled`` for the zone, built (and its key made) if needed."""
        cache_key = (zone_id, compiled.policy_set_version_id)
        bundle = self._bundles.get(cache_key)
        if bundle is not None:
            self._bundles.move_to_end(cache_key)
            return bundle
        pending = self._building.get(cache_key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Bundle] = asyncio.get_running_loop().create_future()
        self._building[cache_key] = future
        try:
            bundle = build_bundle(zone_id, compiled, await self.signing_key(zone_id))
            self._bundles[cache_key] = bundle
            while len(self._bundles) > self.size:
                self._bundles.popitem(last=False)
            future.set_result(bundle)
            return bundle
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it
            raise
        finally:
            del self._building[cache_key]

    async def signing_key(self, zone_id: str) -> BundleSigningKey:
        """The zone's signing key (read once per process; created on first use)."""
        key = self._keys.get(zone_id)
        if key is None:
            async with self.db.transaction() as conn:
                key = await bundle_key(conn, self.kek, zone_id)
            self._keys[zone_id] = key
        return key
