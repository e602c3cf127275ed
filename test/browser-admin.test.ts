import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Browser, BrowserContextOptions, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { makeKey, SECRET, startAuthServer } from "./helpers/auth.js";
import { closeContextWithPage, HAVE_CHROMIUM, IN_CI, launchChromium, PHONE, SCREENSHOTS } from "./helpers/chromium.js";
import { publish, StreamClient } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";

const DESKTOP: BrowserContextOptions = { viewport: { width: 1360, height: 1000 } };

interface AdminPage {
  readonly page: Page;
  /** Console errors, page errors and failed responses, except those `expected` lets through. */
  readonly problems: string[];
}

describe.skipIf(!HAVE_CHROMIUM && !IN_CI)("admin console in Chromium", () => {
  let herald: RunningHerald;
  let browser: Browser;
  const streams: StreamClient[] = [];

  beforeAll(async () => {
    herald = await startTestServer();
    browser = await launchChromium();
  });

  afterAll(async () => {
    for (const stream of streams) stream.close();
    await browser?.close();
    await herald?.shutdown();
  });

  async function openAdmin(
    base: string,
    options: BrowserContextOptions = DESKTOP,
    expected: (problem: string) => boolean = () => false,
  ): Promise<AdminPage> {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    const problems: string[] = [];
    const note = (problem: string) => {
      if (!expected(problem)) problems.push(problem);
    };
    page.on("console", (message) => {
      if (message.type() === "error") note(`console error: ${message.text()}`);
    });
    page.on("pageerror", (error) => note(`page error: ${error.message}`));
    page.on("response", (response) => {
      if (response.status() >= 400) note(`${response.status()} ${new URL(response.url()).pathname}`);
    });
    closeContextWithPage(page);
    await page.goto(`${base}/admin`);
    return { page, problems };
  }

  function metric(page: Page, id: string, attribute: "value" | "peak"): Promise<number> {
    return page
      .locator(`.chart[data-metric="${id}"]`)
      .getAttribute(`data-${attribute}`)
      .then((value) => Number(value ?? "NaN"));
  }

  function subscribe(path: string): StreamClient {
    const stream = new StreamClient(`${herald.url}${path}`);
    streams.push(stream);
    return stream;
  }

  it("shows live charts, the busiest mailboxes, the configuration, and an inspector whose tail shows a publish", async () => {
    const { page, problems } = await openAdmin(herald.url);
    await page.locator('#status[data-tone="live"]').waitFor({ timeout: 15_000 });
    await page.locator('.chart[data-metric="publishes"] canvas').waitFor({ timeout: 15_000 });
    expect(await page.locator("#config").textContent()).toContain("memory");
    expect(await page.locator("#where").textContent()).toBe("memory store · auth off");

    // Connect subscribers and publish for a few seconds, at a changing rate, so every chart has a shape.
    const lobby = [1, 2, 3].map(() => subscribe("/v1/mailboxes/room:lobby/events"));
    subscribe("/v1/mailboxes/feed:cpu/stream");
    await Promise.all(lobby.map((stream) => stream.opened));
    for (let second = 0; second < 4; second++) {
      const count = [3, 8, 5, 12][second] as number;
      for (let i = 0; i < count; i++) await publish(herald.url, "feed:cpu", { data: { cpu: 40 + i } });
      await publish(herald.url, "room:lobby", { title: `round ${second}` });
      await sleep(1000);
    }
    await expect.poll(() => metric(page, "publishes", "peak"), { timeout: 5000 }).toBeGreaterThan(2);
    await expect.poll(() => metric(page, "deliveries", "peak"), { timeout: 5000 }).toBeGreaterThan(2);
    // Three lobby streams and one ndjson stream of the test, and the page's own stats stream.
    await expect.poll(() => metric(page, "connections", "value"), { timeout: 5000 }).toBeGreaterThanOrEqual(5);

    const rows = page.locator("#mailboxes tbody tr");
    await expect.poll(() => rows.first().getAttribute("data-mailbox"), { timeout: 5000 }).toBe("room:lobby");
    // The table refreshes every 2 s; wait for the one that counts every publish.
    const cells = (mailbox: string) => page.locator(`#mailboxes tr[data-mailbox="${mailbox}"] td`).allTextContents();
    await expect
      .poll(async () => (await cells("room:lobby")).slice(0, 2), { timeout: 5000 })
      .toEqual(["room:lobby", "3"]);
    await expect.poll(async () => (await cells("feed:cpu"))[3], { timeout: 5000 }).toBe("28");

    // The inspector: retained messages, a live tail, and the publish form.
    await rows.first().click();
    await page.locator('#tail-status[data-tone="live"]').waitFor({ timeout: 10_000 });
    await expect.poll(() => page.locator("#retained li").count(), { timeout: 5000 }).toBe(4);
    expect(await page.locator("#retained li").first().textContent()).toContain("round 3");
    await publish(herald.url, "room:lobby", { title: "hello from the test", body: "seen in the tail" });
    await page.locator("#tail li", { hasText: "hello from the test" }).waitFor({ timeout: 5000 });
    await page.locator("#publish-title").fill("from the console");
    await page.locator("#publish-body").fill("published with the form");
    await page.locator("#publish-form button").click();
    await page.locator("#tail li", { hasText: "from the console" }).waitFor({ timeout: 5000 });
    await Promise.all(lobby.map((stream) => stream.untilMessages(6)));
    expect(lobby[0]?.messages().at(-1)?.title).toBe("from the console");
    await page.screenshot({ path: join(SCREENSHOTS, "admin-desktop.png"), fullPage: true });

    // Searching narrows the table.
    await page.locator("#search").fill("feed");
    await expect.poll(() => rows.evaluateAll((all) => all.map((row) => row.dataset.mailbox))).toEqual(["feed:cpu"]);
    expect(problems).toEqual([]);
    await page.close();
  });

  it("fits a phone without scrolling sideways", async () => {
    const { page, problems } = await openAdmin(herald.url, PHONE);
    await page.locator('#status[data-tone="live"]').waitFor({ timeout: 15_000 });
    await page.locator('.chart[data-metric="connections"] canvas').waitFor({ timeout: 15_000 });
    const sideways = await page.evaluate(
      () => document.documentElement.scrollWidth > document.documentElement.clientWidth,
    );
    expect(sideways).toBe(false);
    await page.screenshot({ path: join(SCREENSHOTS, "admin-phone.png") });
    expect(problems).toEqual([]);
    await page.close();
  });

  it("asks for an admin key when auth is on, and refuses a key without the right", async () => {
    const admin = makeKey("ops", []);
    const publisher = makeKey("ci", ["*"]);
    const secured = await startAuthServer({
      auth: { keys: [{ ...admin.entry, admin: true }, publisher.entry], tokens: { hs256Secret: SECRET } },
    });
    try {
      const refused = (problem: string) => /^(401|403) \/v1\/admin\//.test(problem) || /status of 40[13]/.test(problem);
      const { page, problems } = await openAdmin(secured.url, DESKTOP, refused);
      await page.locator("#notice").waitFor({ state: "visible", timeout: 10_000 });
      expect(await page.locator("#notice-title").textContent()).toBe("An admin key is needed");
      await page.locator("#key-input").fill(publisher.key);
      await page.locator("#key-form button[type=submit]").click();
      await page.locator('#status[data-tone="down"]', { hasText: "Refused" }).waitFor({ timeout: 10_000 });
      await page.locator("#key-input").fill(admin.key);
      await page.locator("#key-form button[type=submit]").click();
      await page.locator('#status[data-tone="live"]').waitFor({ timeout: 10_000 });
      expect(await page.locator("#where").textContent()).toBe("memory store · auth on");
      // The key stays in the tab's sessionStorage, never in the address.
      expect(page.url()).not.toContain(admin.key);
      expect(problems).toEqual([]);
      await page.close();
    } finally {
      await secured.shutdown();
    }
  });
});
