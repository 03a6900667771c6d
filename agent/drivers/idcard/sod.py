"""EF.SOD (ICAO 9303 Part 10, 4.6.2; Part 11, 5.1): a CMS SignedData whose content is the
LDSSecurityObject with the hash of every data group, signed by the Document Signer."""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import algos, cms, core, x509

from agent.drivers.idcard import tlv
from agent.drivers.idcard.lds import TAG_SOD
from agent.errors import DataFormatError, NotSupportedError

ID_LDS_SECURITY_OBJECT = "2.23.136.1.1.1"

HASH_NAMES = {"sha1": "sha1", "sha224": "sha224", "sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}


class DataGroupHash(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [("data_group_number", core.Integer), ("data_group_hash_value", core.OctetString)]


class DataGroupHashes(core.SequenceOf):  # type: ignore[misc]  # asn1crypto is untyped
    _child_spec = DataGroupHash


class LdsVersionInfo(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [("lds_version", core.PrintableString), ("unicode_version", core.PrintableString)]


class LdsSecurityObject(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [
        ("version", core.Integer),
        ("hash_algorithm", algos.DigestAlgorithm),
        ("data_group_hash_values", DataGroupHashes),
        ("lds_version_info", LdsVersionInfo, {"optional": True}),
    ]


@dataclass(frozen=True, slots=True)
class Sod:
    hash_algorithm: str
    data_group_hashes: dict[int, bytes]
    signed_data: cms.SignedData
    signer_info: cms.SignerInfo
    encapsulated_content: bytes
    ds_certificate: x509.Certificate | None

    def __repr__(self) -> str:
        return f"Sod({self.hash_algorithm}, dgs={sorted(self.data_group_hashes)})"


def parse_sod(data: bytes) -> Sod:
    """Parse EF.SOD (with its '77' tag). Structural problems raise DataFormatError, an
    unknown hash algorithm NotSupportedError; the signature is checked by passive
    authentication, not here."""
    inner = tlv.parse_single(data, TAG_SOD).value
    try:
        info = cms.ContentInfo.load(inner, strict=True)
        if info["content_type"].native != "signed_data":
            raise DataFormatError("EF.SOD is not CMS SignedData")
        signed = info["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].dotted != ID_LDS_SECURITY_OBJECT:
            raise DataFormatError("EF.SOD does not carry an LDSSecurityObject")
        content = encap["content"]
        # The octets as they are (parsing them generically only to dump them again costs time).
        raw = content.contents if isinstance(content, core.ParsableOctetString) else content.native
        if not isinstance(raw, bytes):
            raise DataFormatError("EF.SOD LDSSecurityObject is missing")
        lds = LdsSecurityObject.load(raw, strict=True)
        hash_name = HASH_NAMES.get(lds["hash_algorithm"]["algorithm"].native)
        if hash_name is None:
            raise NotSupportedError("EF.SOD uses a hash algorithm this agent does not support")
        hashes: dict[int, bytes] = {}
        for entry in lds["data_group_hash_values"]:
            number = entry["data_group_number"].native
            if not isinstance(number, int) or not 1 <= number <= 16 or number in hashes:
                raise DataFormatError("EF.SOD lists a bad or repeated data group number")
            hashes[number] = entry["data_group_hash_value"].native
        signer_infos = signed["signer_infos"]
        if len(signer_infos) != 1:
            raise DataFormatError("EF.SOD must have exactly one signer")
        ds_cert: x509.Certificate | None = None
        for choice in signed["certificates"] or []:
            if choice.name == "certificate":
                ds_cert = choice.chosen
                break
        # The certificate and signer info stay lazily parsed (a full parse costs milliseconds);
        # passive authentication turns a malformed one into an INVALID verdict.
        return Sod(hash_name, hashes, signed, signer_infos[0], raw, ds_cert)
    except (DataFormatError, NotSupportedError):
        raise
    except Exception as exc:  # asn1crypto raises ValueError/TypeError/KeyError...
        raise DataFormatError("EF.SOD is not valid DER/CMS") from exc
