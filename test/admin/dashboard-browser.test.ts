// A real browser (Debian's headless Chromium, driven by playwright-core)
// watches the dashboard while a scripted run goes on: a replica starts
// failing and gets ejected, then every call fails and the breaker opens. The
// page must show both; a screenshot lands in .tmp/dashboard.png for review.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningAdmin, serveAdmin } from "../../src/index.js";
import { executableProbe, requireService } from "../support/services.js";
import { callMany, failReplica, type MeshScenario, startMeshScenario } from "./mesh-scenario.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const available = await requireService(
  "chromium",
  executableProbe(CHROMIUM),
  "apt-get install -y chromium (or set CHROMIUM_PATH)",
);
const SCREENSHOT = resolve(".tmp/dashboard.png");

describe.skipIf(!available)("dashboard in a real browser", () => {
  let s: MeshScenario;
  let admin: RunningAdmin;
  let context: BrowserContext | undefined;
  let page: Page;
  let profile: string;
  // Background load, as in a real run: the page should move while we look.
  let loading = true;
  let load: Promise<void> = Promise.resolve();
  let failAll = false;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    // Retries on and the default picker, as users run it: the page shows the budget in use.
    s = await startMeshScenario({ retry: true, policy: "p2c-ewma" });
    admin = await serveAdmin({
      transports: [s.transport],
      servers: s.servers,
      metrics: s.metrics,
      intervalMs: 500,
    });
    profile = mkdtempSync(join(tmpdir(), "mesh-dashboard-chromium-"));
    // A fresh profile per run: nothing cached from an earlier page.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1400, height: 1300 },
      timeout: 60_000,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(60_000);
    page.on("pageerror", (e) => pageErrors.push(e.message));
    load = (async () => {
      while (loading) {
        await callMany(s, 1, { authorization: "Bearer browser-secret" }, failAll ? 14 : 0);
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
  }, 90_000);

  afterAll(async () => {
    loading = false;
    if (pageErrors.length > 0) console.error("page errors:", pageErrors);
    await load;
    await context?.close().catch(() => undefined);
    await admin?.close();
    await s?.close();
    if (profile !== undefined) rmSync(profile, { recursive: true, force: true });
  }, 60_000);

  it("shows live traffic, the ejection of a failing replica and the breaker opening", async () => {
    await page.goto(admin.url);
    await expect.poll(() => page.locator("#conn").textContent(), { timeout: 60_000 }).toBe("live");
    await expect.poll(() => pageErrors).toEqual([]);
    // Live traffic: the methods table and the tap fill in.
    await page
      .locator("#methods-body tr", { hasText: "test.v1.EchoService/Echo" })
      .first()
      .waitFor();
    await page.locator("#tap-body tr[data-code='OK']").first().waitFor();
    // Three replicas share the traffic.
    for (const a of s.addresses) {
      await page.locator("#chart-share .legend", { hasText: a }).waitFor();
    }

    // A replica fails every call: it is ejected, and the page says so.
    const bad = s.addresses[2] as string;
    failReplica(s, 2);
    await page.locator(`#endpoints-body tr[data-address='${bad}'][data-state='ejected']`).waitFor();
    await page.locator("#timeline-body tr[data-kind='ejected']", { hasText: bad }).waitFor();
    await expect.poll(() => page.locator("#k-ejected").textContent()).toBe("1");

    // Every call fails now: the method's breaker opens.
    failAll = true;
    const open = page.locator("#breakers-body tr[data-state='open']");
    await open.first().waitFor({ timeout: 90_000 });
    await expect.poll(() => open.first().textContent()).toContain("Echo");
    await page.locator("#timeline-body tr[data-kind='breaker']", { hasText: "→ open" }).waitFor();
    await expect.poll(() => page.locator("#k-breakers").textContent()).not.toBe("0");
    // The timeline chart has a lane for the breaker and for the ejected endpoint.
    await page.locator("#chart-timeline svg text", { hasText: "breaker" }).first().waitFor();
    await page.locator("#chart-timeline svg text", { hasText: `endpoint ${bad}` }).waitFor();

    // The tap streams the failures.
    await page.locator("#tap-body tr:not([data-code='OK'])").first().waitFor();
    // Tapped headers are redacted in the page too.
    const tapRow = page.locator("#tap-body tr").first();
    await tapRow.click();
    await expect.poll(() => page.locator("#tap-detail").textContent()).toContain("[REDACTED]");
    expect(await page.content()).not.toContain("browser-secret");

    // Let a few more points reach the charts, then keep a picture for review.
    await page.waitForFunction(() => document.querySelectorAll("#chart-rps path").length > 0);
    mkdirSync(resolve(".tmp"), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    // The first screen alone, the size the README shows (docs/dashboard.png).
    await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, "-top.png") });
    expect(pageErrors).toEqual([]);
  }, 240_000);
});
