// Unit tests of the SDK's blocked-loopback diagnosis with scripted fetch answers (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { AgentBlockedError, BLOCK_MESSAGES, diagnose } from "../dist/diagnose.js";

const URL = "http://127.0.0.1:8765";

function fetchScript(answers) {
  const calls = [];
  const impl = async (url, init) => {
    calls.push({ url, init });
    const answer = answers.shift();
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { impl, calls };
}

function response(status, headers = {}) {
  return new Response(status === 204 ? null : "{}", { status, headers });
}

test("a readable 401 without a token is 'not-paired'", async () => {
  const { impl, calls } = fetchScript([response(401, { "centre-error-reason": "PAIRING_REQUIRED" })]);
  assert.equal(await diagnose(URL, undefined, impl), "not-paired");
  assert.equal(calls[0].init.headers.Authorization, undefined);
});

test("a readable 401 for a sent token is 'token-rejected'", async () => {
  const { impl, calls } = fetchScript([response(401, { "centre-error-reason": "PAIRING_INVALID" })]);
  assert.equal(await diagnose(URL, "cdp_x", impl), "token-rejected");
  assert.equal(calls[0].init.headers.Authorization, "Bearer cdp_x");
  assert.equal(calls[0].init.credentials, "omit");
});

test("a CORS failure while the agent answers a no-cors probe is 'origin-not-allowed'", async () => {
  const { impl, calls } = fetchScript([new TypeError("Failed to fetch"), response(204)]);
  assert.equal(await diagnose(URL, "cdp_x", impl), "origin-not-allowed");
  assert.equal(calls[1].url, `${URL}/centre/probe`);
  assert.equal(calls[1].init.mode, "no-cors");
});

test("nothing answering is 'agent-not-running'", async () => {
  const { impl } = fetchScript([new TypeError("Failed to fetch"), new TypeError("Failed to fetch")]);
  assert.equal(await diagnose(URL, "cdp_x", impl), "agent-not-running");
});

test("a denied Local Network Access permission is told apart", async () => {
  const saved = Object.getOwnPropertyDescriptor(globalThis, "navigator");
  Object.defineProperty(globalThis, "navigator", {
    configurable: true,
    value: { permissions: { query: async ({ name }) => {
      if (name !== "local-network-access") throw new TypeError("unknown permission");
      return { state: "denied" };
    } } },
  });
  try {
    const { impl } = fetchScript([new TypeError("Failed to fetch"), new TypeError("Failed to fetch")]);
    assert.equal(await diagnose(URL, "cdp_x", impl), "local-network-access-denied");
  } finally {
    if (saved) Object.defineProperty(globalThis, "navigator", saved);
    else delete globalThis.navigator;
  }
});

test("a working agent is not blocked", async () => {
  const { impl } = fetchScript([response(200)]);
  assert.equal(await diagnose(URL, "cdp_x", impl), null);
});

test("the error carries the reason and a message for people", () => {
  const err = new AgentBlockedError("origin-not-allowed");
  assert.equal(err.reason, "origin-not-allowed");
  assert.equal(err.message, BLOCK_MESSAGES["origin-not-allowed"]);
  assert.ok(err instanceof Error);
});
