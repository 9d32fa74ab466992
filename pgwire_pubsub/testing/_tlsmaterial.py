"""The TLS material of a test cluster: a throwaway CA and another one, the server's
certificate, client certificates (one with an encrypted key), and CRLs, made with openssl."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Optional, Tuple

CERT_USER = "cert_user"
CLIENT_KEY_PASSPHRASE = "client key passphrase"
OTHER_CN = "not_cert_user"  # the CN of a CA-signed client certificate cert_user must refuse


class TlsMaterial:
    """Mixed into ``Cluster``: ``_make_certs()`` fills the attributes below (``Server`` gives
    their defaults), with files in the cluster's ``tls`` directory."""

    ca_file: Optional[str]
    other_ca_file: Optional[str]
    server_cert_file: Optional[str]
    server_key_file: Optional[str]
    has_client_certs: bool
    client_cert_file: Optional[str]
    client_key_file: Optional[str]
    client_encrypted_key_file: Optional[str]
    client_key_passphrase: Optional[str]
    other_cn_cert_file: Optional[str]
    other_cn_key_file: Optional[str]
    crl_file: Optional[str]
    revoked_crl_file: Optional[str]
    crl_dir: Optional[str]
    revoked_crl_dir: Optional[str]

    def _path(self, *parts: str) -> str:
        raise NotImplementedError  # the cluster's

    def _chown(self, path: str) -> None:
        raise NotImplementedError  # the cluster's

    def _openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], cwd=self._path("tls"), check=True,
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)

    def _make_ca(self, name: str) -> str:
        self._openssl("req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-keyout", f"{name}.key",
                      "-out", f"{name}.crt", "-days", "3650", "-subj", f"/CN=pgwire {name}",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return self._path("tls", f"{name}.crt")

    def _make_certs(self) -> None:
        os.mkdir(self._path("tls"))
        self.ca_file = self._make_ca("ca")
        self.other_ca_file = self._make_ca("other_ca")
        with open(self._path("tls", "server.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid\n")
        self._openssl("req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-keyout", "server.key",
                      "-out", "server.csr", "-subj", "/CN=pgwire test server")
        self._openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                      "-CAcreateserial", "-out", "server.crt", "-days", "3650",
                      "-extfile", "server.ext")
        self.server_cert_file = self._path("tls", "server.crt")
        self.server_key_file = self._path("tls", "server.key")
        os.chmod(self.server_key_file, 0o600)
        self._chown(self.server_key_file)
        self._make_client_certs()
        self._make_crls()

    def _make_client_cert(self, name: str, cn: str) -> Tuple[str, str]:
        with open(self._path("tls", "client.ext"), "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
        self._openssl("req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-keyout", f"{name}.key",
                      "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        self._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                      "-CAcreateserial", "-out", f"{name}.crt", "-days", "3650",
                      "-extfile", "client.ext")
        key = self._path("tls", f"{name}.key")
        os.chmod(key, 0o600)
        return self._path("tls", f"{name}.crt"), key

    def _make_client_certs(self) -> None:
        """Client certificates signed by the test CA, for cert authentication."""
        self.client_cert_file, self.client_key_file = self._make_client_cert("client", CERT_USER)
        self._openssl("pkey", "-in", "client.key", "-out", "client_encrypted.key", "-aes256",
                      "-passout", f"pass:{CLIENT_KEY_PASSPHRASE}")
        self.client_encrypted_key_file = self._path("tls", "client_encrypted.key")
        os.chmod(self.client_encrypted_key_file, 0o600)
        self.client_key_passphrase = CLIENT_KEY_PASSPHRASE
        self.other_cn_cert_file, self.other_cn_key_file = self._make_client_cert("other_cn",
                                                                                 OTHER_CN)
        self.has_client_certs = True

    def _make_crls(self) -> None:
        """Two CRLs of the test CA: one revoking nothing, one revoking the server's certificate.

        Each also goes in a directory of its own under its hash name, for sslcrldir.
        """
        with open(self._path("tls", "ca.cnf"), "w") as f:
            f.write("[ ca ]\ndefault_ca = test_ca\n[ test_ca ]\ndatabase = index.txt\n"
                    "crlnumber = crlnumber\ncertificate = ca.crt\nprivate_key = ca.key\n"
                    "default_md = sha256\ndefault_crl_days = 3650\n")
        with open(self._path("tls", "index.txt"), "w"):
            pass
        with open(self._path("tls", "crlnumber"), "w") as f:
            f.write("01\n")
        self._openssl("ca", "-config", "ca.cnf", "-gencrl", "-out", "empty.crl")
        self._openssl("ca", "-config", "ca.cnf", "-revoke", "server.crt")
        self._openssl("ca", "-config", "ca.cnf", "-gencrl", "-out", "server_revoked.crl")
        self.crl_file = self._path("tls", "empty.crl")
        self.revoked_crl_file = self._path("tls", "server_revoked.crl")
        crl_hash = subprocess.run(
            ["openssl", "crl", "-hash", "-noout", "-in", self.crl_file], check=True,
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL).stdout.strip()
        crls = (("crl_dir", self.crl_file), ("revoked_crl_dir", self.revoked_crl_file))
        for attr, source in crls:
            directory = self._path("tls", attr)
            os.mkdir(directory)
            shutil.copy(source, os.path.join(directory, f"{crl_hash}.r0"))
            setattr(self, attr, directory)

