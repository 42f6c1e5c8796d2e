"""Signed bundles: keygen, sign, and refusal of tampered, unsigned or unknown-key bundles."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from hai_edge.bundle import Bundle, builtin_bundles  # noqa: E402
from hai_edge.bundle import signing  # noqa: E402
from hai_edge.errors import BundleError, HaiEdgeError  # noqa: E402
from tests._onnx_models import make_onnx_bundle, onnx_linear_model  # noqa: E402


pytestmark = pytest.mark.usefixtures("no_trust_store")


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, Path]:
    priv, pub, _ = signing.generate_key(tmp_path / "keys" / "site.key")
    other_priv, other_pub, _ = signing.generate_key(tmp_path / "keys" / "other.key")
    return {"priv": priv, "pub": pub, "other_priv": other_priv, "other_pub": other_pub}


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    return make_onnx_bundle(tmp_path / "b", "audio", dim=8)


def _trust(*paths: Path) -> signing.TrustStore:
    return signing.TrustStore.from_paths(paths)


def test_keygen_writes_private_key_readable_only_by_owner_and_never_overwrites(keys) -> None:
    assert keys["priv"].stat().st_mode & 0o077 == 0
    assert keys["pub"].read_text().startswith("-----BEGIN PUBLIC KEY-----")
    with pytest.raises(HaiEdgeError, match="refusing to overwrite"):
        signing.generate_key(keys["priv"])


def test_signed_bundle_loads_with_its_key_trusted(bundle: Path, keys) -> None:
    kid = signing.sign_bundle(bundle, keys["priv"])
    loaded = Bundle.load(bundle, trust=_trust(keys["pub"]))
    assert loaded.signature.status is signing.SignatureStatus.TRUSTED
    assert loaded.signature.key_id == kid
    assert json.loads((bundle / "manifest.json").read_text())["signer"]["key_id"] == kid
    # no trust store: it still loads, the signature is checked and reported as such
    assert Bundle.load(bundle, trust=None).signature.status is signing.SignatureStatus.VALID_UNTRUSTED


def test_swapped_model_with_rehashed_manifest_is_refused(bundle: Path, keys) -> None:
    """The attack the sha256 list alone cannot stop: replace a model and fix the manifest."""
    signing.sign_bundle(bundle, keys["priv"])
    manifest = json.loads((bundle / "manifest.json").read_text())
    model = next(name for name in manifest["files"] if name.endswith(".onnx"))
    evil = onnx_linear_model((1, 1, 64, 200), 8, seed=99)
    (bundle / model).write_bytes(evil)
    manifest["files"][model] = {"sha256": hashlib.sha256(evil).hexdigest(), "size": len(evil)}
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
    with pytest.raises(BundleError, match="does not match its signature"):
        Bundle.load(bundle, trust=_trust(keys["pub"]))
    with pytest.raises(BundleError, match="does not match its signature"):
        Bundle.load(bundle, trust=None)  # a present signature must match even without a store
    # and with the signature file removed too, a trust store refuses the now unsigned bundle
    (bundle / signing.SIGNATURE_NAME).unlink()
    with pytest.raises(BundleError, match="not signed"):
        Bundle.load(bundle, trust=_trust(keys["pub"]))


def test_unknown_key_and_unsigned_bundles_are_refused_with_a_trust_store(bundle: Path, keys) -> None:
    with pytest.raises(BundleError, match="not signed"):
        Bundle.load(bundle, trust=_trust(keys["pub"]))
    assert Bundle.load(bundle, trust=None).signature.status is signing.SignatureStatus.UNSIGNED
    signing.sign_bundle(bundle, keys["other_priv"])
    with pytest.raises(BundleError, match="not in this machine's trust store"):
        Bundle.load(bundle, trust=_trust(keys["pub"]))


def test_trust_store_from_environment_and_config_dir(bundle: Path, keys, monkeypatch,
                                                    tmp_path: Path) -> None:
    signing.sign_bundle(bundle, keys["priv"])
    monkeypatch.setenv(signing.TRUST_ENV, str(keys["other_pub"]))
    with pytest.raises(BundleError, match="not in this machine's trust store"):
        Bundle.load(bundle)
    monkeypatch.setenv(signing.TRUST_ENV, "")  # set but empty: configured, trusts nobody
    with pytest.raises(BundleError, match="not in this machine's trust store"):
        Bundle.load(bundle)
    monkeypatch.delenv(signing.TRUST_ENV)
    store = tmp_path / "config" / "trusted-keys"
    store.mkdir(parents=True)
    shutil.copy(keys["pub"], store / "site.pub")
    assert Bundle.load(bundle).signature.status is signing.SignatureStatus.TRUSTED


def test_reindented_manifest_still_verifies(bundle: Path, keys) -> None:
    """The phone app ships the manifest minified: the canonical form is what is signed."""
    signing.sign_bundle(bundle, keys["priv"])
    data = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps(data, separators=(",", ":")))
    assert Bundle.load(bundle, trust=_trust(keys["pub"])).signature.key_id


def test_builtin_bundles_are_trusted_through_the_demo_key_only(keys, tmp_path: Path) -> None:
    for name in builtin_bundles():
        loaded = Bundle.load(name, trust=_trust(keys["pub"]))  # a store without the demo key
        assert loaded.signature.status is signing.SignatureStatus.TRUSTED_DEMO, name
    # the same bundle copied elsewhere is not built-in: the demo key is not trusted there
    name, path = next(iter(builtin_bundles().items()))
    copy = shutil.copytree(path, tmp_path / name)
    with pytest.raises(BundleError, match="not in this machine's trust store"):
        Bundle.load(copy, trust=_trust(keys["pub"]))


def test_cli_keygen_sign_info_and_trust(tmp_path: Path, capsys) -> None:
    from hai_edge.cli import main

    bundle = make_onnx_bundle(tmp_path / "b", "image", dim=4)
    assert main(["keygen", "-o", str(tmp_path / "k.key")]) == 0
    assert main(["keygen", "-o", str(tmp_path / "k.key")]) == 2  # never overwrites
    assert main(["--trust", str(tmp_path / "k.key.pub"), "info", str(bundle)]) == 2
    assert "not signed" in capsys.readouterr().err
    assert main(["sign", str(bundle), "--key", str(tmp_path / "k.key")]) == 0
    capsys.readouterr()
    assert main(["--trust", str(tmp_path / "k.key.pub"), "info", str(bundle)]) == 0
    assert "signature   signed by key" in capsys.readouterr().out
    assert main(["info", "derm-demo"]) == 0
    assert "project demo key" in capsys.readouterr().out
