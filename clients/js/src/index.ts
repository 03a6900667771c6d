/**
 * @centre-devices/agent-client: talk to the centre-agent on the counter PC from a portal page.
 *
 *     const agent = await connect({ token });          // throws AgentBlockedError with a reason
 *     for await (const ev of agent.events()) { ... }   // one multiplexed stream for every device
 *     const card = await agent.readCard({ mrz, challenge });
 *
 * Generated message and service types are re-exported from `./gen/...`.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";

import { AgentService, type Version } from "./gen/centre/agent/v1/agent_pb.js";
import { DeviceFamily, DeviceRefSchema, type Device } from "./gen/centre/agent/v1/common_pb.js";
import { DeviceService, EventKind, type Event } from "./gen/centre/agent/v1/devices_pb.js";
import { FingerprintService, type CaptureResponse } from "./gen/centre/agent/v1/fingerprint_pb.js";
import { IdCardService, type ReadCardResponse } from "./gen/centre/agent/v1/idcard_pb.js";
import { PrintJobState, PrinterService, type PrintJob } from "./gen/centre/agent/v1/printer_pb.js";
import { ColorMode, JobState, ScannerService } from "./gen/centre/agent/v1/scanner_pb.js";
import { AgentBlockedError, diagnose } from "./diagnose.js";

export { AgentBlockedError, BLOCK_MESSAGES, diagnose, type BlockReason } from "./diagnose.js";
export { Code, ConnectError } from "@connectrpc/connect";
export * from "./gen/centre/agent/v1/agent_pb.js";
export * from "./gen/centre/agent/v1/common_pb.js";
export * from "./gen/centre/agent/v1/devices_pb.js";
export * from "./gen/centre/agent/v1/fingerprint_pb.js";
export * from "./gen/centre/agent/v1/idcard_pb.js";
export * from "./gen/centre/agent/v1/printer_pb.js";
export * from "./gen/centre/agent/v1/scanner_pb.js";
export * from "./gen/centre/agent/v1/barcode_pb.js";

export const DEFAULT_AGENT_URL = "http://127.0.0.1:8765";
const TOKEN_KEY = "centre-agent-token:";

export interface ConnectOptions {
  /** Agent base URL; default http://127.0.0.1:8765. */
  url?: string;
  /** Pairing token; default: the one stored by {@link pair} for this URL. */
  token?: string;
  /** Sub-id of this page for leases (several tabs of one portal); optional. */
  clientId?: string;
  /** Binary protobuf on the wire (default) or JSON (Connect only). */
  binary?: boolean;
  /** Wire protocol: Connect (default) or gRPC-Web; the agent serves both. */
  protocol?: "connect" | "grpc-web";
  /** A fetch implementation (tests). */
  fetch?: typeof fetch;
}

/** The reason an RPC failed, as the agent names it (e.g. "NO_CARD", "ACCESS_DENIED", "PAPER_JAM"). */
export function errorReason(err: unknown): string {
  if (err instanceof ConnectError) {
    return err.metadata.get("centre-error-reason") ?? Code[err.code];
  }
  return "UNKNOWN";
}

function storage(): Storage | undefined {
  try {
    return globalThis.localStorage;
  } catch {
    return undefined;
  }
}

/** Remember a pairing token for an agent URL (in this origin's localStorage) after checking it works. */
export async function pair(token: string, url: string = DEFAULT_AGENT_URL,
                           options: Omit<ConnectOptions, "url" | "token"> = {}): Promise<Agent> {
  const agent = await connect({ ...options, url, token });
  storage()?.setItem(TOKEN_KEY + url, token);
  return agent;
}

export function storedToken(url: string = DEFAULT_AGENT_URL): string | undefined {
  return storage()?.getItem(TOKEN_KEY + url) ?? undefined;
}

export function forgetToken(url: string = DEFAULT_AGENT_URL): void {
  storage()?.removeItem(TOKEN_KEY + url);
}

/** Connect to the agent and check it accepts this page; throws {@link AgentBlockedError} saying why not. */
export async function connect(options: ConnectOptions = {}): Promise<Agent> {
  const url = (options.url ?? DEFAULT_AGENT_URL).replace(/\/+$/, "");
  const token = options.token ?? storedToken(url);
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const auth: Interceptor = (next) => async (req) => {
    if (token) {
      req.header.set("Authorization", `Bearer ${token}`);
    }
    if (options.clientId) {
      req.header.set("centre-client-id", options.clientId);
    }
    return next(req);
  };
  const transport = options.protocol === "grpc-web"
    ? createGrpcWebTransport({ baseUrl: url, useBinaryFormat: true, interceptors: [auth], fetch: fetchImpl })
    : createConnectTransport({
      baseUrl: url, useBinaryFormat: options.binary ?? true, interceptors: [auth], fetch: fetchImpl,
    });
  const agent = new Agent(transport, url);
  try {
    agent.version = await agent.agent.getVersion({});
  } catch (err) {
    const reason = await diagnose(url, token, fetchImpl);
    if (reason !== null) {
      throw new AgentBlockedError(reason, err);
    }
    throw err;
  }
  return agent;
}

export interface MrzKeyInput {
  documentNumber: string;
  dateOfBirth: string; // YYMMDD
  dateOfExpiry: string; // YYMMDD
}

export interface ReadCardOptions {
  mrz?: MrzKeyInput;
  can?: string;
  /** The text of the QR code on a CCCD's face, as the barcode scanner read it (e.g. from
   *  `events()`): the agent derives the chip key from it. Refused by the card: the error is
   *  PERMISSION_DENIED (reason ACCESS_DENIED); ask the clerk to type the MRZ or the CAN. */
  qr?: string;
  /** Portal nonce (from the portal's backend) bound into the signed attestation. */
  challenge?: Uint8Array;
  /** Reader id. Default: the one reader holding a card (else the error reason is NO_CARD or
   *  SEVERAL_CARDS, naming the readers); `Device.cardPresent` says which reader has one. */
  deviceId?: string;
  skipFace?: boolean;
}

export interface ScanOptions {
  deviceId?: string;
  resolution?: number;
  colorMode?: ColorMode;
  /** Called with each page image (JPEG) as it is scanned. */
  onPage?: (page: { index: number; jpeg: Uint8Array; width: number; height: number }) => void;
}

export interface ScannedDocument {
  pdf: Uint8Array;
  pages: number;
  sha256: string;
}

/** A connected agent: one transport, typed clients for every service, and the common flows. */
export class Agent {
  readonly url: string;
  readonly agent: Client<typeof AgentService>;
  readonly devices: Client<typeof DeviceService>;
  readonly idcard: Client<typeof IdCardService>;
  readonly fingerprint: Client<typeof FingerprintService>;
  readonly scanner: Client<typeof ScannerService>;
  readonly printer: Client<typeof PrinterService>;
  version: Version | undefined;

  constructor(transport: Transport, url: string) {
    this.url = url;
    this.agent = createClient(AgentService, transport);
    this.devices = createClient(DeviceService, transport);
    this.idcard = createClient(IdCardService, transport);
    this.fingerprint = createClient(FingerprintService, transport);
    this.scanner = createClient(ScannerService, transport);
    this.printer = createClient(PrinterService, transport);
  }

  async listDevices(family?: DeviceFamily): Promise<Device[]> {
    const res = await this.devices.listDevices({ families: family === undefined ? [] : [family] });
    return res.devices;
  }

  /**
   * Every device event on ONE server stream (plain-http pages get six connections per host, so
   * never open one stream per device). Starts with a snapshot of the present devices; heartbeats
   * are filtered out. Abort `signal` to stop.
   */
  async *events(signal?: AbortSignal): AsyncGenerator<Event> {
    for await (const ev of this.devices.watchEvents({ initialSnapshot: true }, { signal })) {
      if (ev.kind !== EventKind.HEARTBEAT) {
        yield ev;
      }
    }
  }

  async readCard(options: ReadCardOptions): Promise<ReadCardResponse> {
    const device = create(DeviceRefSchema, { deviceId: options.deviceId ?? "" });
    if (options.mrz !== undefined) {
      return this.idcard.readCard({
        device, key: { case: "mrz", value: { ...options.mrz } }, challenge: options.challenge,
        skipFace: options.skipFace ?? false,
      });
    }
    if (options.can !== undefined) {
      return this.idcard.readCard({
        device, key: { case: "can", value: options.can }, challenge: options.challenge,
        skipFace: options.skipFace ?? false,
      });
    }
    if (options.qr !== undefined) {
      return this.idcard.readCard({
        device, key: { case: "qr", value: options.qr }, challenge: options.challenge,
        skipFace: options.skipFace ?? false,
      });
    }
    throw new ConnectError("readCard needs an MRZ key, a CAN or the card's QR code", Code.InvalidArgument);
  }

  async captureFingerprint(deviceId = "", timeoutMs = 30000): Promise<CaptureResponse> {
    return this.fingerprint.capture({ device: { deviceId }, timeoutMs });
  }

  /** Scan to a PDF; pages stream to `onPage` as they come. Fails with the scanner's reason. */
  async scan(options: ScanOptions = {}): Promise<ScannedDocument> {
    const chunks: Uint8Array[] = [];
    let pages = 0;
    let sha256 = "";
    let failure: { reason: string; message: string } | undefined;
    const stream = this.scanner.scan({
      device: { deviceId: options.deviceId ?? "" }, pdf: true, resolution: options.resolution ?? 0,
      colorMode: options.colorMode ?? ColorMode.UNSPECIFIED, pageFormat: options.onPage ? 1 : 0,
    });
    for await (const update of stream) {
      const u = update.update;
      if (u.case === "page" && options.onPage) {
        options.onPage({ index: u.value.index, jpeg: u.value.data, width: u.value.width, height: u.value.height });
      } else if (u.case === "pdfChunk") {
        chunks.push(u.value);
      } else if (u.case === "completed") {
        pages = u.value.pages;
        sha256 = u.value.sha256;
      } else if (u.case === "status" && (u.value.state === JobState.FAILED || u.value.state === JobState.CANCELLED)) {
        failure = { reason: u.value.reason, message: u.value.message };
      }
    }
    if (failure !== undefined) {
      throw new ConnectError(`${failure.reason}: ${failure.message}`, Code.Aborted);
    }
    const pdf = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let offset = 0;
    for (const c of chunks) {
      pdf.set(c, offset);
      offset += c.length;
    }
    return { pdf, pages, sha256 };
  }

  /** Print a document and follow the job until it ends; `onUpdate` sees every state. */
  async print(document: Uint8Array, options: { mimeType?: string; name?: string; deviceId?: string;
    onUpdate?: (job: PrintJob) => void } = {}): Promise<PrintJob> {
    let job = await this.printer.print({
      device: { deviceId: options.deviceId ?? "" }, document, mimeType: options.mimeType ?? "application/pdf",
      name: options.name ?? "document", requestId: crypto.randomUUID(),
    });
    options.onUpdate?.(job);
    const done = [PrintJobState.COMPLETED, PrintJobState.ABORTED, PrintJobState.CANCELLED];
    if (done.includes(job.state)) {
      return job;
    }
    for await (const update of this.printer.watchPrintJob({ jobId: job.jobId })) {
      job = update;
      options.onUpdate?.(job);
      if (done.includes(job.state)) {
        break;
      }
    }
    return job;
  }
}
