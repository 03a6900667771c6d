// Drive the demo portal in real headless Chromium (Debian's, via playwright-core) and print what
// the page showed as one JSON line; the assertions live in the pytest that runs this script.
//
//   node tests/browser.mjs status URL   -> {"state", "reason", "text"} of the connection banner
//   node tests/browser.mjs demo URL     -> the above plus card, fingerprint, scan and print results
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [scenario, url, screenshot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
// extra flags, e.g. --ip-address-space-overrides=127.0.0.1:PORT=public to make a test site "public"
FLAGS.push(...(process.env.CHROMIUM_EXTRA_FLAGS ?? "").split(" ").filter(Boolean));
const TIMEOUT = 60000;

const profile = mkdtempSync(join(tmpdir(), "centre-chromium-"));
const context = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args: FLAGS });
const result = { console: [] };
try {
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  if (process.env.CHROMIUM_GRANT) {
    await context.grantPermissions(process.env.CHROMIUM_GRANT.split(","));
  }
  page.on("console", (msg) => { if (msg.type() === "error") result.console.push(msg.text()); });
  await page.goto(url);
  await page.waitForSelector("#status:not([data-state='connecting'])");
  const status = page.locator("#status");
  result.state = await status.getAttribute("data-state");
  result.reason = await status.getAttribute("data-reason");
  result.text = await status.textContent();
  if (scenario === "demo" && result.state === "connected") {
    await page.waitForSelector("#devices li[data-family='idcard']");
    result.devices = await page.locator("#devices li").allTextContents();
    await page.click("#read-card");
    await page.waitForSelector("#card-name:not(:empty), #card-error:not(:empty)");
    result.cardName = await page.locator("#card-name").textContent();
    result.cardError = await page.locator("#card-error").textContent();
    result.cardFields = await page.locator("#card-fields").textContent();
    result.verdicts = await page.locator("#card-verdicts").textContent();
    result.attestation = await page.locator("#card-attestation").textContent();
    result.faceLoaded = await page.locator("#card-face").evaluate((img) => img.complete && img.naturalWidth > 0);
    await page.click("#capture");
    await page.waitForSelector("#finger-info:not(:empty)");
    result.finger = await page.locator("#finger-info").textContent();
    await page.click("#scan");
    await page.waitForSelector("#scan-info[data-pages], #scan-info:text('failed')");
    result.scan = await page.locator("#scan-info").textContent();
    result.scanPages = Number(await page.locator("#scan-info").getAttribute("data-pages"));
    await page.click("#print");
    await page.waitForSelector("#print-info[data-state], #print-info:text('failed')");
    result.print = await page.locator("#print-info").getAttribute("data-state");
    result.events = await page.locator("#events li").count();
  }
  if (screenshot) {
    await page.screenshot({ path: screenshot, fullPage: true });
  }
} catch (err) {
  result.error = String(err);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result) + "\n");
