"""Client subcommands per device family: idcard, scan, print, fingerprint, barcode."""

from __future__ import annotations

import argparse
import hashlib
import mimetypes
import sys
import uuid
from pathlib import Path
from typing import Any

import grpc

from agent.cli.devices import add_client_options
from agent.cli.output import emit_json, enum_name, run_client
from agent.client import AgentClient
from centre.agent.v1 import barcode_pb2 as bpb
from centre.agent.v1 import common_pb2 as cpb
from centre.agent.v1 import fingerprint_pb2 as fpb
from centre.agent.v1 import idcard_pb2 as ipb
from centre.agent.v1 import printer_pb2 as ppb
from centre.agent.v1 import scanner_pb2 as spb


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    idc = sub.add_parser("idcard", help="chip ID cards").add_subparsers(dest="idcard_cmd", required=True)
    r = idc.add_parser("read", help="read and verify the card on the reader")
    add_client_options(r)
    r.add_argument("--device", default="", help="reader id (default: the one reader holding a card)")
    r.add_argument("--doc-number", help="document number (MRZ)")
    r.add_argument("--birth-date", help="date of birth YYMMDD (MRZ)")
    r.add_argument("--expiry-date", help="date of expiry YYMMDD (MRZ)")
    r.add_argument("--can", help="6-digit card access number (PACE)")
    r.add_argument("--qr", metavar="TEXT",
                   help="the text of the QR code on the card's face: the agent derives the MRZ key from it "
                        "('-' reads one line from stdin, which keeps it out of the process list)")
    r.add_argument("--no-face", action="store_true", help="do not read the face image")
    r.add_argument("--face-out", help="write the face JPEG to this file")
    r.set_defaults(handler=cmd_idcard_read)

    s = sub.add_parser("scan", help="scan to a PDF")
    add_client_options(s)
    s.add_argument("--device", default="")
    s.add_argument("--source", choices=["flatbed", "adf", "adf-duplex"], default="flatbed")
    s.add_argument("--resolution", type=int, default=300)
    s.add_argument("--mode", choices=["color", "gray", "bw"], default="color")
    s.add_argument("--output", required=True, help="PDF file to write")
    s.set_defaults(handler=cmd_scan)

    p = sub.add_parser("print", help="print a file and wait for the job's end")
    add_client_options(p)
    p.add_argument("file")
    p.add_argument("--device", default="")
    p.add_argument("--copies", type=int, default=1)
    p.add_argument("--mime-type", help="document type (default: guessed from the file name)")
    p.set_defaults(handler=cmd_print)

    fp = sub.add_parser("fingerprint", help="fingerprint sensors").add_subparsers(dest="fp_cmd", required=True)
    for name, helptext in (("capture", "capture a finger image"), ("enroll", "enrol a finger into a template"),
                           ("verify", "match a live finger against a template")):
        c = fp.add_parser(name, help=helptext)
        add_client_options(c)
        c.add_argument("--device", default="")
        c.add_argument("--template", help="template file (written by enroll, read by verify)")
        c.add_argument("--image", help="PNG file to write (capture)")
        c.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a finger")
        c.set_defaults(handler=cmd_fingerprint, fp_action=name)

    bc = sub.add_parser("barcode", help="barcode scanners").add_subparsers(dest="bc_cmd", required=True)
    w = bc.add_parser("watch", help="print scans as they happen")
    add_client_options(w)
    w.add_argument("--device", default="")
    w.set_defaults(handler=cmd_barcode_watch)


def _date(d: cpb.Date) -> str | None:
    if not d.year:
        return None
    if not d.month:
        return f"{d.year:04d}"
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}" if d.day else f"{d.year:04d}-{d.month:02d}"


def _verdict(v: int) -> str:
    return enum_name(ipb.Verdict, v, "VERDICT_")


def card_json(r: ipb.ReadCardResponse) -> dict[str, Any]:
    p = r.personal
    return {
        "device_id": r.device_id, "document_type": p.document_type, "issuing_state": p.issuing_state,
        "document_number": p.document_number, "id_number": p.id_number, "full_name": p.full_name,
        "date_of_birth": _date(p.date_of_birth), "sex": p.sex, "nationality": p.nationality,
        "ethnicity": p.ethnicity, "religion": p.religion, "place_of_origin": p.place_of_origin,
        "place_of_residence": p.place_of_residence, "identifying_marks": p.identifying_marks,
        "date_of_issue": _date(p.date_of_issue), "date_of_expiry": _date(p.date_of_expiry),
        "father_name": p.father_name, "mother_name": p.mother_name, "spouse_name": p.spouse_name,
        "old_id_number": p.old_id_number, "nationality_name": p.nationality_name,
        "extra_fields": [{"index": e.index, "values": list(e.values)} for e in p.extra_fields],
        "sources": {name: enum_name(ipb.FieldSource, value, "FIELD_SOURCE_")
                    for name, value in sorted(p.sources.items())},
        "face": {"mime_type": "image/jpeg", "original_mime_type": r.face.original_mime_type,
                 "sha256": r.face.sha256, "width": r.face.width, "height": r.face.height}
        if r.HasField("face") else None,
        "verification": {"passive": _verdict(r.verification.passive), "active": _verdict(r.verification.active),
                         "chip": _verdict(r.verification.chip), "data": _verdict(r.verification.data),
                         "details": list(r.verification.details)},
        "access_protocol": r.access_protocol, "data_groups_read": list(r.data_groups_read),
    }


def cmd_idcard_read(args: argparse.Namespace) -> int:
    request = ipb.ReadCardRequest(device=cpb.DeviceRef(device_id=args.device), skip_face=args.no_face)
    if args.can:
        request.can = args.can
    elif args.qr:
        request.qr = sys.stdin.readline().rstrip("\r\n") if args.qr == "-" else args.qr
    elif args.doc_number and args.birth_date and args.expiry_date:
        request.mrz.CopyFrom(ipb.MrzKey(document_number=args.doc_number, date_of_birth=args.birth_date,
                                        date_of_expiry=args.expiry_date))
    else:
        print("centre-agent: give --doc-number, --birth-date and --expiry-date, or --can, or --qr",
              file=sys.stderr)
        return 2

    async def go() -> int:
        async with AgentClient.connect(args.socket, args.client_id) as client:
            reply = await client.idcard.ReadCard(request, timeout=60)
        if args.face_out and reply.HasField("face"):
            Path(args.face_out).write_bytes(reply.face.jpeg)
        out = card_json(reply)
        if args.json:
            emit_json(out)
        else:
            for key, value in out.items():
                print(f"{key:>20}: {value}")
        return 0 if reply.verification.passive != ipb.VERDICT_INVALID else 3
    return run_client(go)


SOURCES = {"flatbed": spb.SCAN_SOURCE_FLATBED, "adf": spb.SCAN_SOURCE_ADF, "adf-duplex": spb.SCAN_SOURCE_ADF_DUPLEX}
MODES = {"color": spb.COLOR_MODE_COLOR, "gray": spb.COLOR_MODE_GRAY, "bw": spb.COLOR_MODE_BW}


def cmd_scan(args: argparse.Namespace) -> int:
    request = spb.ScanRequest(device=cpb.DeviceRef(device_id=args.device), source=SOURCES[args.source],
                              resolution=args.resolution, color_mode=MODES[args.mode], pdf=True,
                              request_id=uuid.uuid4().hex)
    out_path = Path(args.output)
    partial = out_path.with_name(out_path.name + ".part")

    async def go() -> int:
        state, pages, digest, reason, discarded = "failed", 0, "", "", False
        hasher = hashlib.sha256()
        try:
            async with AgentClient.connect(args.socket, args.client_id) as client:
                with partial.open("wb") as fh:
                    try:
                        async for update in client.scanner.Scan(request):
                            which = update.WhichOneof("update")
                            if which == "pdf_chunk":
                                fh.write(update.pdf_chunk)
                                hasher.update(update.pdf_chunk)
                            elif which == "status":
                                state = enum_name(spb.JobState, update.status.state, "JOB_STATE_")
                                reason = update.status.reason
                                pages = update.status.pages_done
                                discarded = update.status.partial_discarded
                            elif which == "completed":
                                pages, digest = update.completed.pages, update.completed.sha256
                    except grpc.aio.AioRpcError:
                        if not (state == "failed" and reason):
                            raise  # no job status came: a call error, reported as such
                        # the job ran and failed (jam, feeder empty...): report it like a result
            if digest and digest != hasher.hexdigest():
                state, reason = "failed", "CHECKSUM_MISMATCH"
            if state == "done":
                partial.replace(out_path)
        finally:
            partial.unlink(missing_ok=True)
        result = {"state": state, "pages": pages, "sha256": digest, "output": str(out_path) if state == "done" else "",
                  "reason": reason, "partial_discarded": discarded}
        if args.json:
            emit_json(result)
        else:
            print(f"{state}: {pages} page(s) -> {result['output'] or '(nothing written)'} {digest}")
        return 0 if state == "done" else 1
    return run_client(go)


def cmd_print(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"centre-agent: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    mime = args.mime_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    request = ppb.PrintRequest(device=cpb.DeviceRef(device_id=args.device), document=data, mime_type=mime,
                               name=path.name[:255], copies=args.copies, request_id=uuid.uuid4().hex)

    async def go() -> int:
        async with AgentClient.connect(args.socket, args.client_id) as client:
            job = await client.printer.Print(request, timeout=120)
            async for update in client.printer.WatchPrintJob(ppb.WatchPrintJobRequest(job_id=job.job_id)):
                job = update
                if not args.json:
                    print(f"{job.job_id}: {enum_name(ppb.PrintJobState, job.state, 'PRINT_JOB_STATE_')} "
                          f"{' '.join(job.reasons)}", flush=True)
        state = enum_name(ppb.PrintJobState, job.state, "PRINT_JOB_STATE_")
        if args.json:
            emit_json({"job_id": job.job_id, "device_id": job.device_id, "state": state, "reasons": list(job.reasons),
                       "printer_job_id": job.printer_job_id, "pages_printed": job.pages_printed})
        return 0 if state == "completed" else 1
    return run_client(go)


def cmd_fingerprint(args: argparse.Namespace) -> int:
    ref = cpb.DeviceRef(device_id=args.device)
    timeout_ms = int(args.timeout * 1000)

    async def go() -> int:
        async with AgentClient.connect(args.socket, args.client_id) as client:
            if args.fp_action == "capture":
                img = await client.fingerprint.Capture(fpb.CaptureRequest(device=ref, timeout_ms=timeout_ms))
                if args.image:
                    Path(args.image).write_bytes(img.png)
                out: dict[str, Any] = {"width": img.width, "height": img.height, "quality": img.quality,
                                       "resolution_dpi": img.resolution_dpi, "image": args.image or ""}
            elif args.fp_action == "enroll":
                if not args.template:
                    print("centre-agent: enroll needs --template FILE to write", file=sys.stderr)
                    return 2
                stages = 0
                async for update in client.fingerprint.Enroll(fpb.EnrollRequest(device=ref, timeout_ms=timeout_ms)):
                    if update.HasField("progress"):
                        stages = update.progress.stage
                        if not args.json:
                            print(f"press {update.progress.stage}/{update.progress.stages} "
                                  f"{update.progress.retry_reason}", flush=True)
                    else:
                        Path(args.template).write_bytes(update.template.SerializeToString())
                out = {"enrolled": True, "stages": stages, "template": args.template,
                       "format": enum_name(fpb.TemplateFormat, update.template.format, "TEMPLATE_FORMAT_")}
            else:
                if not args.template:
                    print("centre-agent: verify needs --template FILE", file=sys.stderr)
                    return 2
                template = fpb.FingerprintTemplate.FromString(Path(args.template).read_bytes())
                res = await client.fingerprint.Verify(fpb.VerifyRequest(device=ref, template=template,
                                                                        timeout_ms=timeout_ms))
                out = {"matched": res.matched, "score": res.score}
        if args.json:
            emit_json(out)
        else:
            print(" ".join(f"{k}={v}" for k, v in out.items()))
        return 0 if out.get("matched", True) else 1
    return run_client(go)


def cmd_barcode_watch(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with AgentClient.connect(args.socket, args.client_id) as client:
            stream = client.barcode.WatchScans(bpb.WatchScansRequest(device=cpb.DeviceRef(device_id=args.device)))
            async for scan in stream:
                if args.json:
                    emit_json({"text": scan.text, "symbology": scan.symbology, "cccd_qr": scan.cccd_qr})
                else:
                    print(scan.text, flush=True)
        return 0
    return run_client(go)
