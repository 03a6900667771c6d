"""The read result at the API edge: every PersonalData field says where it came from, the data
verdict and DG13's extra fields travel, and the CLI's JSON shows them."""

from __future__ import annotations

import datetime as dt

from agent.api.convert import card_read_pb
from agent.cli.families import card_json
from agent.domain.idcard import (
    CardRead,
    ExtraField,
    FieldSource,
    PersonalData,
    Verdict,
    Verification,
)
from centre.agent.v1 import idcard_pb2 as ipb


def _read() -> CardRead:
    personal = PersonalData(
        document_type="ID", issuing_state="VNM", document_number="099000001", id_number="001099000001",
        full_name="NGUYEN VAN A", date_of_birth=dt.date(1990, 2, 1), sex="M", nationality="VNM",
        date_of_expiry=dt.date(2030, 2, 1), mrz="IDVNM...", extra_fields=(ExtraField(40, ("x", "y")),),
        sources={"document_type": FieldSource.DG1, "full_name": FieldSource.DG1, "id_number": FieldSource.DG13})
    verification = Verification(Verdict.VALID, Verdict.VALID, Verdict.NOT_SUPPORTED,
                                ("data: DG13 holds no name; the name comes from DG1",), data=Verdict.INVALID)
    return CardRead(personal=personal, face=None, verification=verification, data_groups_read=(1, 13),
                    access_protocol="PACE")


def test_every_personal_field_has_a_source_and_unlisted_ones_are_missing() -> None:
    msg = card_read_pb(_read(), "reader-1")
    fields = {f for f in ipb.PersonalData.DESCRIPTOR.fields_by_name if f not in ("sources", "extra_fields")}
    assert set(msg.personal.sources) == fields
    assert msg.personal.sources["full_name"] == ipb.FIELD_SOURCE_DG1
    assert msg.personal.sources["id_number"] == ipb.FIELD_SOURCE_DG13
    assert msg.personal.sources["place_of_residence"] == ipb.FIELD_SOURCE_MISSING
    assert [(e.index, list(e.values)) for e in msg.personal.extra_fields] == [(40, ["x", "y"])]
    assert msg.verification.data == ipb.VERDICT_INVALID


def test_cli_json_shows_sources_extra_fields_and_the_data_verdict() -> None:
    out = card_json(card_read_pb(_read(), "reader-1"))
    assert out["sources"]["full_name"] == "dg1"
    assert out["sources"]["id_number"] == "dg13"
    assert out["sources"]["spouse_name"] == "missing"
    assert out["extra_fields"] == [{"index": 40, "values": ["x", "y"]}]
    assert out["verification"]["data"] == "invalid"
    assert "data: DG13 holds no name; the name comes from DG1" in out["verification"]["details"]
