"""``hai-edge keygen`` and ``hai-edge sign``: Ed25519 keys and signed bundles (docs/security.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def _cmd_keygen(args: argparse.Namespace) -> int:
    from hai_edge.bundle.signing import generate_key

    private, public, kid = generate_key(args.output)
    print(f"key {kid}: private {private} (keep it secret, mode 0600), public {public} "
          "(give it to the devices that should trust your bundles)", file=sys.stderr)
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    from hai_edge.bundle.signing import sign_bundle

    kid = sign_bundle(args.bundle, args.key)
    print(f"signed {args.bundle} with key {kid}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    g = subparsers.add_parser("keygen", help="make an Ed25519 key pair for signing bundles",
                              description="Write KEY (private, mode 0600) and KEY.pub. Never "
                                          "overwrites an existing key.")
    g.add_argument("-o", "--output", required=True, metavar="KEY",
                   help="private key file to create (the public key goes to KEY.pub)")
    g.set_defaults(func=_cmd_keygen)
    s = subparsers.add_parser("sign", help="sign a bundle (a detached signature over its "
                                           "manifest, which pins every file's sha256)",
                              description="Check every file of the bundle, then write "
                                          "manifest.sig and record the signer in manifest.json.")
    s.add_argument("bundle", help="bundle directory to sign (in place)")
    s.add_argument("--key", required=True, metavar="KEY", help="private key from hai-edge keygen")
    s.set_defaults(func=_cmd_sign)
