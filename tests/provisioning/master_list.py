"""An ICAO CSCA master list signed by ``openssl cms`` (not the project's own CMS encoder).

The signer is a master-list signer certificate issued by a CSCA made here with ``openssl``;
that CSCA is put in the list with the CSCAs given, as ICAO 9303-12 master lists carry their
own signer's CSCA.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from asn1crypto import x509 as asn1_x509

from agent.drivers.idcard.trust_store import ID_CSCA_MASTER_LIST, CertificateSet, CscaMasterList


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def signer_csca(work: Path) -> Path:
    """A master-list CSCA (self-signed, EC P-256) made by openssl: ``<work>/ml-csca.pem``."""
    work.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ml-csca.key", "-out", "ml-csca.pem", "-subj", "/C=VN/O=Test/CN=TEST ML CSCA VN",
             "-days", "3650", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=work)
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ml-signer.key", "-out", "ml-signer.csr", "-subj", "/C=VN/O=Test/CN=TEST Master List Signer",
             cwd=work)
    _openssl("x509", "-req", "-in", "ml-signer.csr", "-CA", "ml-csca.pem", "-CAkey", "ml-csca.key",
             "-CAcreateserial", "-out", "ml-signer.pem", "-days", "3650", cwd=work)
    return work / "ml-csca.pem"


def openssl_master_list(work: Path, cscas_der: list[bytes]) -> Path:
    """``<work>/master.ml``: the CSCAs given plus the signer's own CSCA, CMS-signed by openssl."""
    signer_csca(work)
    from cryptography import x509

    own = x509.load_pem_x509_certificate((work / "ml-csca.pem").read_bytes())
    from cryptography.hazmat.primitives import serialization

    certs = [asn1_x509.Certificate.load(der) for der in [*cscas_der, own.public_bytes(serialization.Encoding.DER)]]
    (work / "content.der").write_bytes(CscaMasterList({"version": 0, "cert_list": CertificateSet(certs)}).dump())
    _openssl("cms", "-sign", "-binary", "-nodetach", "-nosmimecap", "-in", "content.der", "-outform", "DER",
             "-econtent_type", ID_CSCA_MASTER_LIST, "-signer", "ml-signer.pem", "-inkey", "ml-signer.key",
             "-out", "master.ml", cwd=work)
    return work / "master.ml"
