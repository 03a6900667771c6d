"""IdCardService: read and verify chip ID cards."""

from __future__ import annotations

from google.protobuf.descriptor import ServiceDescriptor

from agent.api import convert
from agent.api.attestation import Attestor
from agent.api.call import CallInfo
from agent.api.services.targeting import exclusive
from agent.core.runtime import AgentRuntime
from agent.domain.device import DeviceFamily
from agent.domain.idcard import ReadOptions
from agent.drivers.base import IdCardReader
from agent.drivers.idcard.qr import parse_cccd_qr
from agent.errors import InvalidRequestError
from centre.agent.v1 import idcard_pb2 as pb


class IdCardServiceCore:
    descriptor: ServiceDescriptor = pb.DESCRIPTOR.services_by_name["IdCardService"]

    def __init__(self, runtime: AgentRuntime, attestor: Attestor | None = None) -> None:
        self._rt = runtime
        self._attestor = attestor  # signs reads that carry a challenge (None: no attestations)

    async def ReadCard(self, request: pb.ReadCardRequest, call: CallInfo) -> pb.ReadCardResponse:
        key = convert.access_key_from_pb(request)
        if len(request.challenge) > 64:
            raise InvalidRequestError("challenge longer than 64 bytes")
        options = ReadOptions(include_face=not request.skip_face, include_raw=request.include_raw,
                              challenge=bytes(request.challenge))
        async with exclusive(self._rt, request.device, DeviceFamily.IDCARD, IdCardReader, call) as (dev_id, reader):
            read = await reader.read_card(key, options)
        response = convert.card_read_pb(read, dev_id)
        if request.challenge and self._attestor is not None:
            response.attestation.CopyFrom(self._attestor.attest(response, call.origin, bytes(request.challenge)))
        return response

    async def ParseCardQr(self, request: pb.ParseCardQrRequest, call: CallInfo) -> pb.CardQrData:
        return convert.card_qr_pb(parse_cccd_qr(request.text))
