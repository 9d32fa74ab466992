"""Throwaway self-signed certificates made with the openssl command, for the TLS tests.

Each distinct request gets a certificate of its own, valid for 30 days, signed with a
key of its own (so no two certificates share a key) unless the maker shares one key per
kind, which saves generating RSA keys over and over.  The test cluster's CA chain is made
by pgwire_pubsub.testing.pgcluster.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Dict, Optional, Tuple

import pytest

KEYS = {  # kind -> genpkey arguments
    "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "rsa-pss-key": ["-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048"],
    "ec256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "ec384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "ed25519": ["-algorithm", "ED25519"],
    "ed448": ["-algorithm", "ED448"],
    "dsa": [],  # 2048 bits, from parameters generated once per directory
}


def openssl(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["openssl", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def der_of(cert_file: str) -> bytes:
    """The DER of a PEM certificate file."""
    with open(cert_file) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class CertMaker:
    """Self-signed certificates made with the openssl command, one per distinct request."""

    def __init__(self, directory: Path, share_keys: bool = False) -> None:
        self.directory = directory
        self.share_keys = share_keys
        self._made: Dict[Tuple[str, Optional[str], str, Optional[str], bool], Tuple[str, str]] = {}

    def _key(self, kind: str, path: str) -> str:
        """The key file ``path``, or ``{kind}.key`` when keys are shared, made if missing."""
        if self.share_keys:
            path = f"{kind}.key"
            if (self.directory / path).exists():
                return path
        if kind == "dsa":
            if not (self.directory / "dsa.params").exists():
                openssl(
                    self.directory,
                    "genpkey",
                    "-genparam",
                    "-algorithm",
                    "DSA",
                    "-pkeyopt",
                    "dsa_paramgen_bits:2048",
                    "-out",
                    "dsa.params",
                )
            openssl(self.directory, "genpkey", "-paramfile", "dsa.params", "-out", path)
        else:
            openssl(self.directory, "genpkey", *KEYS[kind], "-out", path)
        os.chmod(self.directory / path, 0o600)
        return path

    def make(
        self,
        subject: str = "/CN=pgwire test",
        san: Optional[str] = None,
        key: str = "ec256",
        digest: Optional[str] = "sha256",
        pss: bool = False,
    ) -> Tuple[str, str]:
        """(certificate file, key file) of a certificate for ``subject`` (UTF-8, "+" joins
        the names of one RDN) with a subjectAltName of ``san`` when given, signed with
        ``digest`` (None: the key's own, for EdDSA), with RSA-PSS padding when ``pss``."""
        request = (subject, san, key, digest, pss)
        if request not in self._made:
            name = f"cert{len(self._made)}"
            key_file = self._key(key, f"{name}.key")
            args = ["req", "-x509", "-key", key_file, "-out", f"{name}.crt"]
            args += ["-days", "30", "-utf8", "-subj", subject]
            if "+" in subject:
                args.append("-multivalue-rdn")
            if digest is not None:
                args.append(f"-{digest}")
            if pss:
                args += ["-sigopt", "rsa_padding_mode:pss"]
            if san is not None:
                args += ["-addext", f"subjectAltName={san}"]
            openssl(self.directory, *args)
            self._made[request] = (
                str(self.directory / f"{name}.crt"),
                str(self.directory / key_file),
            )
        return self._made[request]

    def der(
        self,
        subject: str = "/CN=pgwire test",
        san: Optional[str] = None,
        key: str = "ec256",
        digest: Optional[str] = "sha256",
        pss: bool = False,
    ) -> bytes:
        """The DER of the certificate ``make`` makes for the same request."""
        return der_of(self.make(subject, san, key, digest, pss)[0])


def cert_maker(
    tmp_path_factory: pytest.TempPathFactory, basename: str, share_keys: bool = False
) -> CertMaker:
    """A CertMaker in a new temporary directory; skips the test without the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    return CertMaker(tmp_path_factory.mktemp(basename), share_keys)
