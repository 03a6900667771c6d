// The portal-backend verifier (dist/attestation.js) on attestations made by the Python agent code
// (node --test). Vectors: tests/attestation-vectors.json (committed, made by
// `python -m tests.web.attestation_vectors`), or the file $ATTESTATION_VECTORS names (a fresh set
// the Python suite makes). Each case says what both verifiers must answer: "ok" or a reason.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { AttestationRejectedError, verifyCardRead } from "../dist/attestation.js";

const file = process.env.ATTESTATION_VECTORS ?? new URL("./attestation-vectors.json", import.meta.url);
const cases = JSON.parse(readFileSync(file, "utf8"));
const bytes = (b64) => Uint8Array.from(Buffer.from(b64, "base64"));

test("the vectors cover every check the brief names", () => {
  const expected = new Set(cases.map((c) => c.expect));
  for (const reason of ["ok", "BAD_SIGNATURE", "UNTRUSTED_CHAIN", "CHALLENGE_MISMATCH", "CERTIFICATE_EXPIRED",
                        "SELF_SIGNED"]) {
    assert.ok(expected.has(reason), reason);
  }
});

for (const c of cases) {
  test(`${c.name}: ${c.expect}`, async () => {
    const run = () => verifyCardRead(bytes(c.payload), bytes(c.signature), c.chain.map(bytes), {
      caCertificate: c.ca_pem, expectedChallenge: bytes(c.challenge), expectedOrigin: c.origin,
      maxAgeMs: c.max_age_ms, now: new Date(c.now_ms), trustedSelfSigned: c.trusted_self_signed,
      faceJpeg: c.face === null ? undefined : bytes(c.face),
    });
    if (c.expect === "ok") {
      const read = await run();
      const signed = JSON.parse(Buffer.from(c.payload, "base64").toString("utf8"));
      assert.deepEqual(read.payload, signed);
      assert.equal(read.personal.full_name, "Trần Thị Thử Nghiệm");
      assert.equal(read.verification.passive, "invalid");
      assert.equal(read.enrolled, c.trusted_self_signed.length === 0);
      assert.equal(read.agentId, signed.agent.id);
    } else {
      await assert.rejects(run, (err) => {
        assert.ok(err instanceof AttestationRejectedError, String(err));
        assert.equal(err.reason, c.expect, err.message);
        return true;
      });
    }
  });
}
