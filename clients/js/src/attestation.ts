/**
 * Verify a card-read attestation in a portal's backend (Node 20+, Deno, or any runtime with
 * WebCrypto), with the province gateway's CA certificate only. The same checks, in the same
 * order and with the same reasons, as the Python `agent.attestation_verify.verify_card_read`.
 *
 *     import { verifyCardRead } from "@centre-devices/agent-client/attestation";
 *     const read = await verifyCardRead(att.payload, att.signature, att.certificateChain, {
 *       caCertificate: provinceCaPem, expectedChallenge: nonce,
 *       expectedOrigin: "https://portal.example.gov.vn", maxAgeMs: 5 * 60_000 });
 *     read.personal.full_name; read.verification.passive; read.agentId;
 *
 * Trust the fields of `read.payload`, not the ones that travelled beside it: the signature covers them.
 * The payload format is described in the repository's README ("Card-read attestation").
 */

/** Extended key usage of attestation certificates (the gateway CA sets it on nothing else). */
export const ATTESTATION_EKU = "2.25.334255837514931465700786113405480142468";
export const PAYLOAD_TYPE = "centre.idcard.read";
export const PAYLOAD_VERSION = 2;
/** How far ahead of the verifier's clock a read may be dated (the counter PC's clock drifts). */
export const CLOCK_SKEW_MS = 5 * 60_000;
const MAX_CHAIN = 4;

export type RejectReason =
  | "MALFORMED" | "UNTRUSTED_CHAIN" | "SELF_SIGNED" | "CERTIFICATE_EXPIRED" | "WRONG_KEY_USAGE"
  | "BAD_SIGNATURE" | "AGENT_MISMATCH" | "CHALLENGE_MISMATCH" | "ORIGIN_MISMATCH" | "STALE" | "FACE_MISMATCH";

export class AttestationRejectedError extends Error {
  constructor(readonly reason: RejectReason, message: string) {
    super(`attestation rejected: ${message}`);
    this.name = "AttestationRejectedError";
  }
}

export interface VerifyOptions {
  /** The province gateway's CA certificate, PEM text or DER bytes: the only trust anchor. */
  caCertificate: string | Uint8Array;
  /** The nonce this backend issued for this read (use each once). */
  expectedChallenge: Uint8Array;
  /** The portal origin the read was made for. */
  expectedOrigin: string;
  /** How old the read may be, in milliseconds. */
  maxAgeMs: number;
  /** The verifier's clock (tests); default now. */
  now?: Date;
  /** SPKI SHA-256 (hex) of keys of agents that are not enrolled but trusted anyway; default none. */
  trustedSelfSigned?: readonly string[];
  /** When given, its SHA-256 must be the signed face digest. */
  faceJpeg?: Uint8Array;
}

export interface VerifiedRead {
  /** The whole signed result. */
  payload: Record<string, unknown>;
  /** Personal data (proto field names; `sources` per field). */
  personal: Record<string, unknown>;
  /** Every verdict ("valid", "invalid", "not_supported", "unknown_issuer") and `details`. */
  verification: Record<string, unknown>;
  agentId: string;
  centre: string;
  province: string;
  /** false: accepted only because its key is in `trustedSelfSigned`. */
  enrolled: boolean;
  readAt: Date;
}

function reject(reason: RejectReason, message: string): AttestationRejectedError {
  return new AttestationRejectedError(reason, message);
}

// -- DER ----------------------------------------------------------------------------------------

interface Tlv {
  tag: number;
  /** the whole encoding (header + content) */
  der: Uint8Array;
  content: Uint8Array;
}

function readTlv(buf: Uint8Array, pos: number): Tlv {
  if (pos + 2 > buf.length) throw reject("MALFORMED", "truncated DER");
  const tag = buf[pos];
  let len = buf[pos + 1];
  let off = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 4 || off + n > buf.length) throw reject("MALFORMED", "bad DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[off + i];
    off += n;
  }
  if (off + len > buf.length) throw reject("MALFORMED", "truncated DER");
  return { tag, der: buf.subarray(pos, off + len), content: buf.subarray(off, off + len) };
}

function children(tlv: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let pos = 0; pos < tlv.content.length;) {
    const child = readTlv(tlv.content, pos);
    out.push(child);
    pos += child.der.length;
  }
  return out;
}

/** Dotted OID text; arcs as BigInt, since UUID arcs (2.25.x) exceed 2^53. */
function oid(bytes: Uint8Array): string {
  const arcs: string[] = [];
  let value = 0n;
  for (const b of bytes) {
    value = (value << 7n) | BigInt(b & 0x7f);
    if (!(b & 0x80)) {
      if (arcs.length === 0) {
        const first = value < 80n ? value / 40n : 2n;
        arcs.push(first.toString(), (value - first * 40n).toString());
      } else {
        arcs.push(value.toString());
      }
      value = 0n;
    }
  }
  return arcs.join(".");
}

/** A copy on its own ArrayBuffer, as WebCrypto's types want it. */
function own(u: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(u);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

function base64Decode(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw reject("MALFORMED", "challenge is not base64");
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function pemToDer(pem: string): Uint8Array {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem);
  if (!m) throw reject("MALFORMED", "the CA certificate is not PEM");
  return Uint8Array.from(atob(m[1].replace(/\s+/g, "")), (c) => c.charCodeAt(0));
}

// -- X.509 --------------------------------------------------------------------------------------

const OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1";
const CURVES: Record<string, [string, number]> = { "1.2.840.10045.3.1.7": ["P-256", 32], "1.3.132.0.34": ["P-384", 48] };
const SIG_HASH: Record<string, string> = {
  "1.2.840.10045.4.3.2": "SHA-256", "1.2.840.10045.4.3.3": "SHA-384", "1.2.840.113549.1.1.11": "SHA-256",
};
const OID_RSA = "1.2.840.113549.1.1.1";

interface Certificate {
  tbs: Uint8Array;
  sigAlg: string;
  signature: Uint8Array;
  issuer: Uint8Array;
  subject: Uint8Array;
  subjectAttrs: Map<string, string>;
  notBefore: Date;
  notAfter: Date;
  spki: Uint8Array;
  spkiAlg: string;
  spkiParam: string;
  isCa: boolean;
  keyUsage: number | null; // first byte of the KeyUsage bits (digitalSignature 0x80, keyCertSign 0x04)
  eku: string[] | null;
}

function parseTime(tlv: Tlv): Date {
  const s = new TextDecoder().decode(tlv.content);
  const m = tlv.tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s)
    : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) throw reject("MALFORMED", "bad certificate time");
  let year = Number(m[1]);
  if (tlv.tag === 0x17) year += year < 50 ? 2000 : 1900;
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

function parseName(tlv: Tlv): Map<string, string> {
  const out = new Map<string, string>();
  for (const rdn of children(tlv)) {
    for (const atv of children(rdn)) {
      const [type, value] = children(atv);
      const key = oid(type.content);
      if (!out.has(key)) out.set(key, new TextDecoder().decode(value.content));
    }
  }
  return out;
}

function parseCertificate(der: Uint8Array): Certificate {
  try {
    const cert = readTlv(der, 0);
    const [tbsTlv, sigAlgTlv, sigTlv] = children(cert);
    let fields = children(tbsTlv);
    if (fields[0].tag === 0xa0) fields = fields.slice(1); // version
    const [, , issuer, validity, subject, spki, ...rest] = fields;
    const [notBefore, notAfter] = children(validity);
    const [spkiAlg] = children(spki);
    const [algOid, param] = children(spkiAlg);
    const parsed: Certificate = {
      tbs: tbsTlv.der, sigAlg: oid(children(sigAlgTlv)[0].content), signature: sigTlv.content.subarray(1),
      issuer: issuer.der, subject: subject.der, subjectAttrs: parseName(subject),
      notBefore: parseTime(notBefore), notAfter: parseTime(notAfter), spki: spki.der, spkiAlg: oid(algOid.content),
      spkiParam: param && param.tag === 0x06 ? oid(param.content) : "", isCa: false, keyUsage: null, eku: null,
    };
    const extensions = rest.find((t) => t.tag === 0xa3);
    for (const ext of extensions ? children(children(extensions)[0]) : []) {
      const parts = children(ext);
      const id = oid(parts[0].content);
      const value = readTlv(parts[parts.length - 1].content, 0);
      if (id === "2.5.29.19") {
        const bc = children(value);
        parsed.isCa = bc.length > 0 && bc[0].tag === 0x01 && bc[0].content[0] !== 0;
      } else if (id === "2.5.29.15") {
        parsed.keyUsage = value.content.length > 1 ? value.content[1] : 0;
      } else if (id === "2.5.29.37") {
        parsed.eku = children(value).map((t) => oid(t.content));
      }
    }
    return parsed;
  } catch (err) {
    if (err instanceof AttestationRejectedError) throw err;
    throw reject("MALFORMED", "a certificate does not parse");
  }
}

/** DER ECDSA-Sig-Value -> r || s, as WebCrypto wants it. */
function ecdsaRaw(der: Uint8Array, size: number): Uint8Array {
  const [r, s] = children(readTlv(der, 0));
  const out = new Uint8Array(size * 2);
  for (const [i, part] of [r, s].entries()) {
    let bytes = part.content;
    while (bytes.length > size && bytes[0] === 0) bytes = bytes.subarray(1);
    if (bytes.length > size) throw reject("BAD_SIGNATURE", "signature too long");
    out.set(bytes, i * size + size - bytes.length);
  }
  return out;
}

async function verifySignature(signer: Certificate, sigAlg: string, signature: Uint8Array,
                               data: Uint8Array): Promise<boolean> {
  const hash = SIG_HASH[sigAlg];
  if (!hash) return false;
  try {
    if (signer.spkiAlg === OID_EC_PUBLIC_KEY) {
      const curve = CURVES[signer.spkiParam];
      if (!curve) return false;
      const key = await crypto.subtle.importKey("spki", own(signer.spki), { name: "ECDSA", namedCurve: curve[0] }, false,
        ["verify"]);
      return await crypto.subtle.verify({ name: "ECDSA", hash }, key, own(ecdsaRaw(signature, curve[1])), own(data));
    }
    if (signer.spkiAlg === OID_RSA) {
      const key = await crypto.subtle.importKey("spki", own(signer.spki), { name: "RSASSA-PKCS1-v1_5", hash }, false,
        ["verify"]);
      return await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, own(signature), own(data));
    }
  } catch {
    return false;
  }
  return false;
}

async function issuedBy(cert: Certificate, issuer: Certificate): Promise<boolean> {
  return equalBytes(cert.issuer, issuer.subject) && verifySignature(issuer, cert.sigAlg, cert.signature, cert.tbs);
}

function checkDates(cert: Certificate, now: Date, what: string): void {
  if (now > cert.notAfter) throw reject("CERTIFICATE_EXPIRED", `${what} expired ${cert.notAfter.toISOString()}`);
  if (now < cert.notBefore) {
    throw reject("CERTIFICATE_EXPIRED", `${what} not valid before ${cert.notBefore.toISOString()}`);
  }
}

async function chainTo(leaf: Certificate, intermediates: Certificate[], anchor: Certificate, now: Date): Promise<void> {
  checkDates(anchor, now, "the CA certificate");
  let current = leaf;
  for (let i = 0; i < MAX_CHAIN; i++) {
    if (await issuedBy(current, anchor)) return;
    let parent: Certificate | undefined;
    for (const c of intermediates) {
      if (c !== current && c.isCa && c.keyUsage !== null && (c.keyUsage & 0x04) && await issuedBy(current, c)) {
        parent = c;
        break;
      }
    }
    if (!parent) break;
    checkDates(parent, now, "an intermediate CA certificate");
    current = parent;
  }
  throw reject("UNTRUSTED_CHAIN", "the attestation certificate is not issued by the given CA");
}

function checkLeafUsage(leaf: Certificate): void {
  if (leaf.keyUsage === null || leaf.eku === null) {
    throw reject("WRONG_KEY_USAGE", "the certificate lacks key usage or extended key usage");
  }
  if (!(leaf.keyUsage & 0x80) || !leaf.eku.includes(ATTESTATION_EKU)) {
    throw reject("WRONG_KEY_USAGE", "the certificate is not an attestation certificate");
  }
  if (leaf.eku.includes("1.3.6.1.5.5.7.3.2") || leaf.eku.includes("1.3.6.1.5.5.7.3.1")) {
    throw reject("WRONG_KEY_USAGE", "an attestation certificate must not also authenticate TLS peers");
  }
}

function parsePayload(bytes: Uint8Array): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw reject("MALFORMED", "payload is not JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw reject("MALFORMED", "payload is not an object");
  const b = body as Record<string, unknown>;
  if (b.v !== PAYLOAD_VERSION || b.type !== PAYLOAD_TYPE) {
    throw reject("MALFORMED", `payload is not a ${PAYLOAD_TYPE} version ${PAYLOAD_VERSION}`);
  }
  const kinds: [string, string][] = [["agent", "object"], ["personal", "object"], ["verification", "object"],
    ["challenge", "string"], ["origin", "string"], ["read_at_ms", "integer"], ["face_sha256", "string"]];
  for (const [key, kind] of kinds) {
    const value = b[key];
    const ok = kind === "integer" ? Number.isInteger(value)
      : kind === "object" ? typeof value === "object" && value !== null && !Array.isArray(value)
        : typeof value === kind;
    if (!ok) throw reject("MALFORMED", `payload field ${key} missing or of the wrong type`);
  }
  return b;
}

/** Check an attestation; resolve to the signed result or reject with {@link AttestationRejectedError}.
 * `certificateChain`: DER certificates, the attestation certificate first (`Attestation.certificateChain`). */
export async function verifyCardRead(payload: Uint8Array, signature: Uint8Array,
                                     certificateChain: readonly Uint8Array[],
                                     options: VerifyOptions): Promise<VerifiedRead> {
  const now = options.now ?? new Date();
  if (certificateChain.length === 0) throw reject("MALFORMED", "no certificate chain");
  const certs = certificateChain.slice(0, MAX_CHAIN + 1).map(parseCertificate);
  const leaf = certs[0];
  const spkiSha256 = hex(await crypto.subtle.digest("SHA-256", own(leaf.spki)));
  let enrolled = true;
  if (await issuedBy(leaf, leaf)) {
    if (!(options.trustedSelfSigned ?? []).includes(spkiSha256)) {
      throw reject("SELF_SIGNED", "self-signed attestation key (the agent is not enrolled)");
    }
    enrolled = false;
    checkDates(leaf, now, "the attestation certificate");
  } else {
    const ca = typeof options.caCertificate === "string" ? pemToDer(options.caCertificate) : options.caCertificate;
    await chainTo(leaf, certs.slice(1), parseCertificate(ca), now);
    checkDates(leaf, now, "the attestation certificate");
    checkLeafUsage(leaf);
  }
  if (leaf.spkiAlg !== OID_EC_PUBLIC_KEY || leaf.spkiParam !== "1.2.840.10045.3.1.7") {
    throw reject("WRONG_KEY_USAGE", "the attestation key is not ECDSA P-256");
  }
  if (!await verifySignature(leaf, "1.2.840.10045.4.3.2", signature, payload)) {
    throw reject("BAD_SIGNATURE", "the signature does not verify (payload altered or another key)");
  }
  const body = parsePayload(payload);
  const agent = body.agent as Record<string, unknown>;
  const agentId = enrolled ? leaf.subjectAttrs.get("2.5.4.3") ?? "" : spkiSha256;
  const centre = enrolled ? leaf.subjectAttrs.get("2.5.4.11") ?? "" : "";
  const province = enrolled ? leaf.subjectAttrs.get("2.5.4.8") ?? "" : "";
  if (agent.id !== agentId || (agent.centre ?? "") !== centre || (agent.province ?? "") !== province
      || agent.enrolled !== enrolled) {
    throw reject("AGENT_MISMATCH", "the payload names another agent than the certificate");
  }
  const challenge = base64Decode(body.challenge as string);
  if (options.expectedChallenge.length === 0 || !equalBytes(challenge, options.expectedChallenge)) {
    throw reject("CHALLENGE_MISMATCH", "the read answers another challenge (replayed?)");
  }
  if (body.origin !== options.expectedOrigin) {
    throw reject("ORIGIN_MISMATCH", `the read was made for origin ${JSON.stringify(body.origin)}`);
  }
  const readAt = new Date(body.read_at_ms as number);
  if (readAt.getTime() > now.getTime() + CLOCK_SKEW_MS) {
    throw reject("STALE", "the read is dated in the future (check the counter PC's clock)");
  }
  if (now.getTime() - readAt.getTime() > options.maxAgeMs) {
    throw reject("STALE", `the read is older than ${options.maxAgeMs} ms`);
  }
  if (options.faceJpeg !== undefined
      && hex(await crypto.subtle.digest("SHA-256", own(options.faceJpeg))) !== body.face_sha256) {
    throw reject("FACE_MISMATCH", "the face image is not the one the agent read");
  }
  return {
    payload: body, personal: body.personal as Record<string, unknown>,
    verification: body.verification as Record<string, unknown>, agentId, centre, province, enrolled, readAt,
  };
}
