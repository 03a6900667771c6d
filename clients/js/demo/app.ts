// The demo portal: everything goes through the SDK in ../src (bundled into app.js by esbuild).
import {
  AgentBlockedError, DeviceFamily, DeviceState, EventKind, PrintJobState, Verdict, connect, errorReason, pair,
  storedToken, type Agent, type Device, type Date as PbDate,
} from "../src/index.js";

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
// served by the agent itself (/demo/): talk to the same origin; else ?agent=URL or the default
const agentUrl = params.get("agent") ?? (location.pathname.startsWith("/demo") ? location.origin : undefined);
const protocol = params.get("protocol") === "grpc-web" ? "grpc-web" : "connect";
const devices = new Map<string, Device>();
let scannedPdf: Uint8Array | undefined;

function status(state: string, text: string, reason = ""): void {
  const el = $("status");
  el.dataset.state = state;
  el.dataset.reason = reason;
  el.textContent = text;
}

function date(d: PbDate | undefined): string {
  if (d === undefined || d.year === 0) return "";
  return [d.day, d.month].filter((n) => n > 0).map((n) => String(n).padStart(2, "0")).concat(String(d.year)).join("/");
}

function verdict(v: Verdict): string {
  return Verdict[v].toLowerCase();
}

function renderDevices(): void {
  const list = $("devices");
  list.replaceChildren(...[...devices.values()].map((d) => {
    const li = document.createElement("li");
    li.dataset.family = DeviceFamily[d.family].toLowerCase();
    const card = d.family === DeviceFamily.IDCARD && d.cardPresent ? ", card on the reader" : "";
    li.textContent = `${d.name} (${DeviceFamily[d.family].toLowerCase()}) — ${DeviceState[d.state].toLowerCase()}${card}`;
    return li;
  }));
}

function logEvent(text: string): void {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("events").prepend(li);
  while ($("events").children.length > 100) $("events").lastElementChild?.remove();
}

async function watch(agent: Agent): Promise<void> {
  for (;;) {
    try {
      for await (const ev of agent.events()) {
        if (ev.device !== undefined && ev.kind !== EventKind.DEVICE_REMOVED) devices.set(ev.deviceId, ev.device);
        if (ev.kind === EventKind.DEVICE_REMOVED) devices.delete(ev.deviceId);
        renderDevices();
        logEvent(`${EventKind[ev.kind].toLowerCase()} ${ev.deviceId}`);
      }
    } catch (err) {
      logEvent(`event stream ended (${errorReason(err)}), reconnecting`);
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function url(bytes: Uint8Array, type: string): string {
  return URL.createObjectURL(new Blob([new Uint8Array(bytes)], { type }));
}

function wire(agent: Agent): void {
  for (const id of ["read-card", "capture", "scan"]) ($(id) as HTMLButtonElement).disabled = false;

  $("card-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("card-error").textContent = "";
    $("card").hidden = true;
    try {
      const challenge = crypto.getRandomValues(new Uint8Array(16));
      const card = await agent.readCard({
        mrz: { documentNumber: ($("mrz-doc") as HTMLInputElement).value, dateOfBirth: ($("mrz-dob") as HTMLInputElement).value,
               dateOfExpiry: ($("mrz-exp") as HTMLInputElement).value },
        challenge,
      });
      const p = card.personal;
      $("card-name").textContent = p?.fullName ?? "";
      const fields: [string, string][] = [
        ["ID number", p?.idNumber ?? ""], ["Date of birth", date(p?.dateOfBirth)], ["Sex", p?.sex ?? ""],
        ["Nationality", p?.nationality ?? ""], ["Place of origin", p?.placeOfOrigin ?? ""],
        ["Residence", p?.placeOfResidence ?? ""], ["Expiry", date(p?.dateOfExpiry)],
      ];
      $("card-fields").replaceChildren(...fields.flatMap(([k, v]) => {
        const dt = document.createElement("dt");
        dt.textContent = k;
        const dd = document.createElement("dd");
        dd.textContent = v;
        return [dt, dd];
      }));
      const v = card.verification;
      $("card-verdicts").replaceChildren(...(["passive", "active", "chip", "data"] as const).map((k) => {
        const span = document.createElement("span");
        const value = v ? verdict(v[k]) : "unspecified";
        span.className = `verdict-${value}`;
        span.textContent = `${k}: ${value} `;
        return span;
      }));
      const att = card.attestation;
      const signer = att ? (JSON.parse(new TextDecoder().decode(att.payload)) as {
        agent?: { id?: string; centre?: string; enrolled?: boolean };
      }).agent : undefined;
      $("card-attestation").textContent = att
        ? `Signed by the agent (${att.algorithm}), ${att.payload.length}-byte payload for this page's challenge; `
          + (signer?.enrolled ? `certificate from the gateway CA for ${signer.id} (${signer.centre})`
            : "self-signed: this agent is not enrolled, backends refuse it unless they trust its key")
        : "";
      if (card.face?.jpeg.length) ($("card-face") as HTMLImageElement).src = url(card.face.jpeg, "image/jpeg");
      $("card").hidden = false;
    } catch (err) {
      $("card-error").textContent = `Card read failed: ${errorReason(err)}`;
    }
  });

  $("capture").addEventListener("click", async () => {
    try {
      const image = await agent.captureFingerprint();
      const img = $("finger") as HTMLImageElement;
      img.src = url(image.png, "image/png");
      img.hidden = false;
      $("finger-info").textContent = `${image.width}×${image.height} at ${image.resolutionDpi} dpi, quality ${image.quality}`;
    } catch (err) {
      $("finger-info").textContent = `Capture failed: ${errorReason(err)}`;
    }
  });

  $("scan").addEventListener("click", async () => {
    $("scan-info").textContent = "Scanning…";
    try {
      let shown = 0;
      const doc = await agent.scan({ onPage: () => { shown += 1; $("scan-info").textContent = `Scanning… ${shown} page(s)`; } });
      scannedPdf = doc.pdf;
      const frame = $("pdf") as HTMLIFrameElement;
      frame.src = url(doc.pdf, "application/pdf");
      frame.hidden = false;
      $("scan-info").dataset.pages = String(doc.pages);
      $("scan-info").textContent = `Scanned ${doc.pages} page(s), PDF ${doc.pdf.length} bytes, SHA-256 ${doc.sha256.slice(0, 16)}…`;
      ($("print") as HTMLButtonElement).disabled = false;
    } catch (err) {
      $("scan-info").textContent = `Scan failed: ${errorReason(err)}`;
    }
  });

  $("print").addEventListener("click", async () => {
    if (scannedPdf === undefined) return;
    try {
      const job = await agent.print(scannedPdf, {
        name: "demo scan",
        onUpdate: (j) => { $("print-info").textContent = `Print job ${j.jobId}: ${PrintJobState[j.state].toLowerCase()}`; },
      });
      $("print-info").dataset.state = PrintJobState[job.state].toLowerCase();
    } catch (err) {
      $("print-info").textContent = `Print failed: ${errorReason(err)}`;
    }
  });
}

async function start(token?: string): Promise<void> {
  status("connecting", "Connecting to the device agent…");
  try {
    const agent = token ? await pair(token, agentUrl, { protocol }) : await connect({ url: agentUrl, protocol });
    status("connected", `Connected to centre-agent ${agent.version?.agentVersion ?? ""} (${protocol})`);
    $("pair-form").hidden = true;
    const health = await agent.agent.getHealth({});
    if (health.simulate) {
      // the simulator's made-up citizen (agent/simulator/idcard.py SIMULATED_KEY), not a person
      ($("mrz-doc") as HTMLInputElement).value = "203004567";
      ($("mrz-dob") as HTMLInputElement).value = "900115";
      ($("mrz-exp") as HTMLInputElement).value = "300115";
    }
    wire(agent);
    void watch(agent);
  } catch (err) {
    if (err instanceof AgentBlockedError) {
      status("blocked", err.message, err.reason);
      if (err.reason === "not-paired" || err.reason === "token-rejected") $("pair-form").hidden = false;
    } else {
      status("blocked", `Cannot use the device agent: ${errorReason(err)}`, "error");
    }
  }
}

$("pair-form").addEventListener("submit", (e) => {
  e.preventDefault();
  void start(($("pair-token") as HTMLInputElement).value.trim());
});

// a token handed over in the URL fragment (never sent to any server) is used once and removed
const fragment = new URLSearchParams(location.hash.slice(1));
const handed = fragment.get("token") ?? undefined;
if (handed !== undefined) history.replaceState(null, "", location.pathname + location.search);
void start(handed ?? storedToken(agentUrl));
