"""Signed bundles: a detached Ed25519 signature over the canonical manifest, and a trust store.

The manifest pins the sha256 of every file, so signing the manifest signs the whole bundle. The
signature lives beside it in ``manifest.sig`` (JSON: algorithm, key id, public key, signature);
the manifest itself records the signer's key id under ``"signer"``. The signed bytes are the
*canonical* manifest (sorted keys, no whitespace, UTF-8), so a copy re-indented on the way (the
phone app ships it minified) still verifies.

Trust: without a trust store every bundle loads as before, and a signature that is present must
still match (a bundle whose manifest was edited after signing is refused). With a trust store
configured (``trust=`` keys, the ``HAI_EDGE_TRUSTED_KEYS`` environment variable, or ``*.pub`` files
in the config directory ``$HAI_EDGE_CONFIG_DIR/trusted-keys`` / ``~/.config/hai-edge/trusted-keys``),
an unsigned bundle or one signed by a key outside the store is refused. The project's demo key
(``keys/demo.pub``, shipped) is trusted for the built-in bundles only.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hai_edge.errors import BundleError, HaiEdgeError, MissingDependencyError

__all__ = [
    "SIGNATURE_NAME",
    "TRUST_ENV",
    "SignatureState",
    "SignatureStatus",
    "TrustStore",
    "canonical_manifest",
    "check_signature",
    "generate_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "sign_bundle",
    "sign_manifest",
]

SIGNATURE_NAME = "manifest.sig"
TRUST_ENV = "HAI_EDGE_TRUSTED_KEYS"
CONFIG_ENV = "HAI_EDGE_CONFIG_DIR"
_FORMAT = "hai-edge-signature/1"
_ALGORITHM = "ed25519"
_KEYS_DIR = Path(__file__).resolve().parent / "keys"
DEMO_PUBLIC_KEY = _KEYS_DIR / "demo.pub"


class SignatureStatus(str, enum.Enum):
    UNSIGNED = "unsigned"
    TRUSTED = "trusted"  # signed by a key of the trust store
    TRUSTED_DEMO = "trusted-demo"  # a built-in bundle signed by the project's demo key
    VALID_UNTRUSTED = "valid"  # the signature matches, no trust store says who may sign


@dataclasses.dataclass(frozen=True)
class SignatureState:
    """What :func:`check_signature` found; ``describe()`` is the line ``hai-edge info`` shows."""

    status: SignatureStatus
    key_id: str | None = None

    def describe(self) -> str:
        if self.status is SignatureStatus.UNSIGNED:
            return "unsigned"
        what = {
            SignatureStatus.TRUSTED: "trusted (in the trust store)",
            SignatureStatus.TRUSTED_DEMO: "trusted (project demo key, built-in bundles only)",
            SignatureStatus.VALID_UNTRUSTED: "valid, but no trust store is configured",
        }[self.status]
        return f"signed by key {self.key_id}: {what}"


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise MissingDependencyError("signed bundles", "kiosk", "cryptography") from None
    return ed25519, serialization


def _raw_public(public_key: Any) -> bytes:
    _, serialization = _crypto()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Any) -> str:
    """First 16 hex digits of the sha256 of the raw 32-byte public key."""
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def canonical_manifest(data: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: the manifest object, keys sorted, no whitespace, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def generate_key(private_path: str | os.PathLike[str]) -> tuple[Path, Path, str]:
    """Write a new Ed25519 private key (PEM, mode 0600) and ``<path>.pub``; return both and its id.

    Never overwrites: losing a signing key by accident would orphan every bundle it signed.
    """
    ed25519, serialization = _crypto()
    private = Path(private_path)
    public = private.with_name(private.name + ".pub")
    for p in (private, public):
        if p.exists():
            raise HaiEdgeError(f"{p}: already exists; refusing to overwrite a key")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    private.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public.write_bytes(pub)
    return private, public, key_id(key.public_key())


def load_private_key(path: str | os.PathLike[str]) -> Any:
    ed25519, serialization = _crypto()
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise HaiEdgeError(f"{path}: not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise HaiEdgeError(f"{path}: not an Ed25519 key (make one with hai-edge keygen)")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Any:
    ed25519, serialization = _crypto()
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise HaiEdgeError(f"{path}: not a readable PEM public key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise HaiEdgeError(f"{path}: not an Ed25519 public key")
    return key


def _key_files(source: Path) -> list[Path]:
    if source.is_dir():
        return sorted(source.glob("*.pub"))
    if source.is_file():
        return [source]
    raise HaiEdgeError(f"{source}: trusted key file or folder not found")


@dataclasses.dataclass(frozen=True)
class TrustStore:
    """Public keys allowed to sign the bundles this machine loads, by key id."""

    keys: Mapping[str, Any]

    @classmethod
    def from_paths(cls, paths: Iterable[str | os.PathLike[str]]) -> TrustStore:
        keys = {}
        for source in paths:
            for path in _key_files(Path(source)):
                key = load_public_key(path)
                keys[key_id(key)] = key
        return cls(keys)

    @classmethod
    def configured(cls, extra: Iterable[str | os.PathLike[str]] = ()) -> TrustStore | None:
        """The machine's trust store (explicit paths, environment, config directory), or None
        when nothing is configured. An empty folder or variable counts as configured: it trusts
        no key, so every bundle except the built-in ones is refused."""
        sources = [Path(p) for p in extra]
        env = os.environ.get(TRUST_ENV)
        if env is not None:
            sources += [Path(p) for p in env.split(os.pathsep) if p]
        config = Path(os.environ.get(CONFIG_ENV) or Path.home() / ".config" / "hai-edge")
        if (config / "trusted-keys").is_dir():
            sources.append(config / "trusted-keys")
        if not sources and env is None:
            return None
        return cls.from_paths(sources)


def _read_signature(root: Path) -> dict[str, Any] | None:
    path = root / SIGNATURE_NAME
    if not path.is_file():
        return None
    try:
        sig = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, OSError):
        raise BundleError(f"{root}: {SIGNATURE_NAME} is not valid JSON; refusing to load it") from None
    if not isinstance(sig, dict) or sig.get("format") != _FORMAT or sig.get("algorithm") != _ALGORITHM:
        raise BundleError(f"{root}: {SIGNATURE_NAME} is not an Ed25519 hai-edge signature")
    return sig


def check_signature(root: Path, manifest: Mapping[str, Any], *, builtin: bool,
                    trust: TrustStore | None) -> SignatureState:
    """Verify ``root``'s signature against its parsed manifest; raise :class:`BundleError` when
    the bundle must not be loaded (bad signature; with a trust store: unsigned or unknown key)."""
    sig = _read_signature(root)
    if sig is None:
        if trust is not None and not builtin:
            raise BundleError(f"{root}: bundle is not signed, and this machine only loads bundles "
                              "signed by a trusted key")
        return SignatureState(SignatureStatus.UNSIGNED)
    ed25519, _ = _crypto()
    try:
        public = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(sig["public_key"]))
        signature = base64.b64decode(sig["signature"])
    except (KeyError, TypeError, ValueError):
        raise BundleError(f"{root}: {SIGNATURE_NAME} is incomplete; refusing to load it") from None
    kid = key_id(public)
    if sig.get("key_id") != kid or (manifest.get("signer") or {}).get("key_id") != kid:
        raise BundleError(f"{root}: the signature's key id does not match the manifest's signer")
    from cryptography.exceptions import InvalidSignature

    try:
        public.verify(signature, canonical_manifest(manifest))
    except InvalidSignature:
        raise BundleError(f"{root}: the manifest does not match its signature (changed after "
                          "signing); refusing to load it") from None
    if builtin and kid == key_id(load_public_key(DEMO_PUBLIC_KEY)):
        return SignatureState(SignatureStatus.TRUSTED_DEMO, kid)
    if trust is None:
        return SignatureState(SignatureStatus.VALID_UNTRUSTED, kid)
    if kid not in trust.keys:
        raise BundleError(f"{root}: signed by key {kid}, which is not in this machine's trust "
                          "store; refusing to load it")
    return SignatureState(SignatureStatus.TRUSTED, kid)


def sign_manifest(manifest: Mapping[str, Any], private_key: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (manifest with ``signer`` set, signature record) for ``private_key``."""
    public = private_key.public_key()
    kid = key_id(public)
    signed = dict(manifest)
    signed["signer"] = {"key_id": kid, "algorithm": _ALGORITHM}
    record = {
        "format": _FORMAT,
        "algorithm": _ALGORITHM,
        "key_id": kid,
        "public_key": base64.b64encode(_raw_public(public)).decode("ascii"),
        "signature": base64.b64encode(private_key.sign(canonical_manifest(signed))).decode("ascii"),
    }
    return signed, record


def sign_bundle(path: str | os.PathLike[str], private_key_path: str | os.PathLike[str]) -> str:
    """Sign a bundle in place (after checking every file's sha256); return the key id.

    The signed copy is assembled in a temporary sibling and swapped in whole, so an interrupted
    run leaves the bundle as it was.
    """
    import shutil
    import tempfile

    from hai_edge.bundle._store import MANIFEST_NAME, Bundle
    from hai_edge.fileio import replace_dir

    key = load_private_key(private_key_path)
    bundle = Bundle.load(path, trust=None, check_signature=False)
    root = bundle.root
    raw = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
    signed, record = sign_manifest(raw, key)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.sign.", dir=root.parent))
    try:
        shutil.copytree(root, tmp, dirs_exist_ok=True)
        (tmp / MANIFEST_NAME).write_text(json.dumps(signed, indent=2) + "\n", encoding="utf-8")
        (tmp / SIGNATURE_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        replace_dir(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record["key_id"]
