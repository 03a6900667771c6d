/**
 * Why a portal cannot reach the agent on loopback, told apart so the page can say what to do:
 *
 * - "local-network-access-denied": Chromium blocks the public page from calling loopback
 *   (Local Network Access, Chromium 142+): the user refused the prompt or policy is missing.
 * - "agent-not-running": nothing answers on the agent's port.
 * - "origin-not-allowed": the agent answers, but not to this page's origin ([web] allowed_origins).
 * - "not-paired": no pairing token was given (`centre-agent pair --origin ...` issues one).
 * - "token-rejected": a token was sent but the agent does not accept it (wrong or revoked).
 */
export type BlockReason =
  | "local-network-access-denied"
  | "agent-not-running"
  | "origin-not-allowed"
  | "not-paired"
  | "token-rejected";

export const BLOCK_MESSAGES: Record<BlockReason, string> = {
  "local-network-access-denied":
    "The browser blocks this page from reaching the device agent on this computer (Local Network Access). " +
    "Allow local network access for this site, or ask IT to push the browser policy for the portal.",
  "agent-not-running": "The device agent (centre-agent) is not running on this computer.",
  "origin-not-allowed":
    "The device agent is running but does not accept this portal. Ask IT to add this site to [web] allowed_origins.",
  "not-paired": "This portal is not paired with the device agent. Run `centre-agent pair --origin <this site>`.",
  "token-rejected":
    "The device agent rejected this portal's pairing token (wrong or revoked). Pair the portal again.",
};

/** The agent cannot be used from this page; `reason` says why. */
export class AgentBlockedError extends Error {
  readonly reason: BlockReason;

  constructor(reason: BlockReason, cause?: unknown) {
    super(BLOCK_MESSAGES[reason], cause === undefined ? undefined : { cause });
    this.name = "AgentBlockedError";
    this.reason = reason;
  }
}

async function localNetworkDenied(): Promise<boolean> {
  const permissions = (globalThis.navigator as Navigator | undefined)?.permissions;
  if (permissions === undefined) {
    return false;
  }
  // Chromium 142+ names the permission "local-network-access" ("loopback-network" for loopback
  // in later versions); browsers that do not know a name reject the query.
  for (const name of ["loopback-network", "local-network-access"]) {
    try {
      const status = await permissions.query({ name: name as PermissionName });
      if (status.state === "denied") {
        return true;
      }
    } catch {
      // unknown permission name in this browser
    }
  }
  return false;
}

/**
 * Find out why calls to the agent at `baseUrl` fail (null: they do not).
 *
 * One authenticated call first: an answer the page can read tells "not paired" or "token
 * rejected". A network error hides the cause, so a `no-cors` probe follows: if the agent answers
 * that (an opaque response), the CORS check refused this origin; if not, either the browser
 * blocked loopback (Local Network Access permission denied) or nothing listens.
 */
export async function diagnose(baseUrl: string, token: string | undefined,
                               fetchImpl: typeof fetch = globalThis.fetch.bind(globalThis)): Promise<BlockReason | null> {
  const base = baseUrl.replace(/\/+$/, "");
  try {
    const headers: Record<string, string> = { "Content-Type": "application/json", "Connect-Protocol-Version": "1" };
    if (token) {
      headers["Authorization"] = `Bearer ${token}`;
    }
    const res = await fetchImpl(`${base}/centre.agent.v1.AgentService/GetVersion`, {
      method: "POST", body: "{}", headers, credentials: "omit", cache: "no-store",
    });
    if (res.status === 401) {
      return res.headers.get("centre-error-reason") === "PAIRING_INVALID" ? "token-rejected" : "not-paired";
    }
    if (res.status === 403) {
      return "origin-not-allowed";
    }
    return null;
  } catch {
    // network error: CORS refusal, blocked loopback, or nothing listening
  }
  try {
    await fetchImpl(`${base}/centre/probe`, { mode: "no-cors", credentials: "omit", cache: "no-store" });
    return "origin-not-allowed";
  } catch {
    return (await localNetworkDenied()) ? "local-network-access-denied" : "agent-not-running";
  }
}
