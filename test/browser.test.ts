import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { publish } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOTS = join(import.meta.dirname, "..", "test-output", "browser");
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const HAVE_CHROMIUM = existsSync(CHROMIUM);
// CI installs Chromium (.ci/run), so a missing one there is a broken setup, not a reason to skip.
const IN_CI = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false";

if (!HAVE_CHROMIUM && !IN_CI) {
  console.warn(`browser tests skipped: ${CHROMIUM} is missing (apt-get install -y chromium; .ci/run does this)`);
}

describe.skipIf(!HAVE_CHROMIUM && !IN_CI)("demo apps in Chromium", () => {
  let herald: RunningHerald;
  let context: BrowserContext;
  let profile: string;
  /** For tests of two people or two devices: each gets a context of its own (own storage, no shared tabs). */
  let browser: Browser;

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`${CHROMIUM} is missing and CI is set: browser tests must run in CI`);
    herald = await startTestServer();
    profile = await mkdtemp(join(tmpdir(), "herald-chromium-"));
    await mkdir(SCREENSHOTS, { recursive: true });
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });

  afterAll(async () => {
    await browser?.close();
    await context?.close();
    await herald?.shutdown();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  async function open(path: string): Promise<Page> {
    const page = await context.newPage();
    page.on("pageerror", (error) => console.error(`page error on ${path}:`, error));
    await page.goto(`${herald.url}${path}`);
    return page;
  }

  /** A page in a fresh context of its own, as another browser or device would open it. */
  async function openElsewhere(path: string): Promise<Page> {
    const other = await browser.newContext();
    const page = await other.newPage();
    page.on("pageerror", (error) => console.error(`page error on ${path}:`, error));
    page.on("close", () => void other.close());
    await page.goto(`${herald.url}${path}`);
    return page;
  }

  async function untilStatus(page: Page, state: string, extra: Record<string, string> = {}): Promise<void> {
    const selector = Object.entries({ state, ...extra })
      .map(([key, value]) => `[data-${key}="${value}"]`)
      .join("");
    await page.locator(`#status${selector}`).waitFor({ timeout: 15_000 });
  }

  function bodies(page: Page): Promise<string[]> {
    return page.locator("#messages .body").allTextContents();
  }

  async function untilBodies(page: Page, predicate: (seen: string[]) => boolean): Promise<string[]> {
    await expect.poll(async () => predicate(await bodies(page)), { timeout: 15_000 }).toBe(true);
    return bodies(page);
  }

  async function screenshot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  }

  it("chat: a message typed in one page appears in the other with who said it", async () => {
    const ann = await open("/demo/chat?room=r1&nick=ann&share=0");
    const bob = await open("/demo/chat?room=r1&nick=bob&share=0");
    await untilStatus(ann, "open");
    await untilStatus(bob, "open");
    await expect.poll(() => herald.connections.count("sse", "ndjson")).toBe(2);
    await ann.fill("#text", "hello from ann");
    await ann.press("#text", "Enter");
    await untilBodies(bob, (seen) => seen.includes("hello from ann"));
    await bob.fill("#text", "hi ann");
    await bob.click("button[type=submit]");
    await untilBodies(ann, (seen) => seen.includes("hi ann"));
    await publish(herald.url, "room:r1", { title: "curl", body: "from the terminal" });
    for (const page of [ann, bob]) {
      expect(await untilBodies(page, (seen) => seen.length === 3)).toEqual([
        "hello from ann",
        "hi ann",
        "from the terminal",
      ]);
    }
    expect(await bob.locator("#messages li").first().locator(".who").textContent()).toBe("ann");
    await screenshot(bob, "chat");
    await ann.close();
    await bob.close();
  });

  it("inbox: alerts published while the page was closed appear on reopening, each once", async () => {
    const first = await open("/demo/inbox?user=offline");
    await untilStatus(first, "open");
    await publish(herald.url, "user:offline", { body: "before closing" });
    await untilBodies(first, (seen) => seen.includes("before closing"));
    await first.close();
    await expect.poll(() => herald.hub.subscriberCount).toBe(0);
    for (const n of [1, 2, 3]) await publish(herald.url, "user:offline", { title: "alert", body: `alert ${n}` });
    const again = await open("/demo/inbox?user=offline");
    await untilStatus(again, "open");
    // Delivery is in order, so once the marker is shown everything before it has been.
    await publish(herald.url, "user:offline", { body: "marker" });
    const seen = await untilBodies(again, (list) => list.includes("marker"));
    expect(seen).toEqual(["marker", "alert 3", "alert 2", "alert 1", "before closing"]);
    // The count is the server's; it follows the messages on the same stream.
    await expect.poll(() => again.locator("#unread").textContent()).toBe("5");
    await screenshot(again, "inbox");
    await again.close();
  });

  it("inbox: two tabs share one server connection, and the second takes over when the first closes", async () => {
    const a = await open("/demo/inbox?user=shared");
    await untilStatus(a, "open", { role: "leader" });
    const b = await open("/demo/inbox?user=shared");
    await untilStatus(b, "open", { role: "follower" });
    await expect.poll(() => herald.connections.count("sse", "ndjson")).toBe(1);
    await expect.poll(() => herald.hub.subscriberCount).toBe(1);
    await publish(herald.url, "user:shared", { body: "to both tabs" });
    for (const page of [a, b]) expect(await untilBodies(page, (seen) => seen.length === 1)).toEqual(["to both tabs"]);
    expect(herald.connections.count("sse", "ndjson")).toBe(1);
    await a.close();
    await untilStatus(b, "open", { role: "leader" });
    await expect.poll(() => herald.connections.count("sse", "ndjson")).toBe(1);
    await publish(herald.url, "user:shared", { body: "after takeover" });
    expect(await untilBodies(b, (seen) => seen.length === 2)).toEqual(["after takeover", "to both tabs"]);
    await screenshot(b, "inbox-shared");
    await b.close();
  });

  it("dashboard: the demo feed updates over one long-lived connection with no polling", async () => {
    const page = await context.newPage();
    const requests: string[] = [];
    page.on("request", (request) => requests.push(new URL(request.url()).pathname));
    await page.goto(`${herald.url}/demo/dashboard?feed=demo`);
    await untilStatus(page, "open", { transport: "sse" });
    await page.locator('.chart[data-field="cpu"]').waitFor({ timeout: 15_000 });
    await untilBodies(page, (seen) => seen.length >= 3);
    expect(await page.locator("#caption").textContent()).toMatch(/^cpu \d+%/);
    await publish(herald.url, "feed:demo", { body: "deploy finished", data: { deploys: 7 } });
    await untilBodies(page, (seen) => seen.includes("deploy finished"));
    await page.locator('.chart[data-field="deploys"]').waitFor();
    const api = requests.filter((path) => path.startsWith("/v1/"));
    expect(api).toEqual(["/v1/events"]);
    await expect.poll(() => herald.connections.count("sse", "ndjson")).toBe(1);
    await screenshot(page, "dashboard");
    await page.close();
    await expect.poll(() => herald.hub.watcherCount("feed:demo")).toBe(0);
  });

  it("ticker: values stream in over a WebSocket", async () => {
    const page = await context.newPage();
    const sockets: string[] = [];
    page.on("websocket", (socket) => sockets.push(new URL(socket.url()).pathname));
    await page.goto(`${herald.url}/demo/ticker?feed=prices`);
    await untilStatus(page, "open", { transport: "websocket" });
    await expect.poll(() => herald.connections.count("ws")).toBe(1);
    await expect.poll(() => herald.connections.count("sse", "ndjson")).toBe(0);
    for (const price of [101, 102, 103]) {
      await publish(herald.url, "feed:prices", { body: `ACME ${price}`, data: { price } });
    }
    expect(await untilBodies(page, (seen) => seen.length === 3)).toEqual(["ACME 101", "ACME 102", "ACME 103"]);
    expect(await page.locator("#messages li .who").first().textContent()).toBe("price=101");
    expect(sockets).toEqual(["/v1/ws"]);
    await screenshot(page, "ticker");
    await page.close();
  });

  it("falls back to long-poll when the event stream is held by a buffering proxy", async () => {
    const page = await context.newPage();
    const held: string[] = [];
    // Like a proxy that buffers the response: the request goes out and nothing ever comes back.
    await page.route("**/v1/events?**", (route) => {
      held.push(route.request().url());
    });
    await page.goto(`${herald.url}/demo/dashboard?feed=lp&sseDeadlineMs=1000`);
    await untilStatus(page, "open", { transport: "long-poll" });
    expect(held).toHaveLength(1);
    await publish(herald.url, "feed:lp", { body: "via long-poll", data: { n: 1 } });
    await publish(herald.url, "feed:lp", { body: "and again", data: { n: 2 } });
    expect(await untilBodies(page, (seen) => seen.length === 2)).toEqual(["and again", "via long-poll"]);
    await expect.poll(() => herald.connections.count("sse", "ndjson")).toBe(0);
    await screenshot(page, "dashboard-long-poll");
    await page.close();
  });

  it("chat: shows who is in the room, live, as people join and leave", async () => {
    const people = (page: Page) =>
      page.locator("#members li").evaluateAll((items) => items.map((li) => li.dataset.sub));
    const ann = await openElsewhere("/demo/chat?room=here&nick=ann");
    await untilStatus(ann, "open");
    await expect.poll(() => people(ann), { timeout: 15_000 }).toEqual(["ann"]);
    expect(await ann.locator("#members li .you").count()).toBe(1);
    const bob = await openElsewhere("/demo/chat?room=here&nick=bob");
    await untilStatus(bob, "open");
    await expect.poll(() => people(ann), { timeout: 15_000 }).toEqual(["ann", "bob"]);
    // Everyone lists themselves first, then the others by arrival.
    expect(await people(bob)).toEqual(["bob", "ann"]);
    expect(await ann.locator("#people-count").textContent()).toBe("2");
    // A second tab of bob's is not a second bob.
    const bobAgain = await bob.context().newPage();
    await bobAgain.goto(`${herald.url}/demo/chat?room=here&nick=bob`);
    await untilStatus(bobAgain, "open");
    await expect.poll(() => people(bobAgain), { timeout: 15_000 }).toEqual(["bob", "ann"]);
    expect(await people(ann)).toEqual(["ann", "bob"]);
    await screenshot(ann, "chat-presence");
    await bob.context().close();
    await expect.poll(() => people(ann), { timeout: 15_000 }).toEqual(["ann"]);
    expect(await ann.locator("#people-count").textContent()).toBe("1");
    await ann.close();
  });

  it("inbox: read state is the server's, the same in two browsers, and kept across a reload", async () => {
    for (const n of [1, 2, 3]) await publish(herald.url, "user:synced", { title: "alert", body: `alert ${n}` });
    const laptop = await openElsewhere("/demo/inbox?user=synced");
    const phone = await openElsewhere("/demo/inbox?user=synced");
    const unread = (page: Page) => page.locator("#unread").textContent();
    const unreadBodies = (page: Page) => page.locator("#messages li.is-unread .body").allTextContents();
    for (const page of [laptop, phone]) {
      await untilStatus(page, "open");
      await untilBodies(page, (seen) => seen.length === 3);
      await expect.poll(() => unread(page), { timeout: 15_000 }).toBe("3");
    }
    // Reading "alert 2" reads everything up to it; the other browser follows within a second.
    await laptop.locator("#messages li", { hasText: "alert 2" }).click();
    await expect.poll(() => unread(laptop), { timeout: 5_000 }).toBe("1");
    await expect.poll(() => unread(phone), { timeout: 1_000 }).toBe("1");
    await expect.poll(() => unreadBodies(phone), { timeout: 1_000 }).toEqual(["alert 3"]);
    await publish(herald.url, "user:synced", { title: "alert", body: "alert 4" });
    for (const page of [laptop, phone]) await expect.poll(() => unread(page), { timeout: 5_000 }).toBe("2");
    await phone.click("#read-all");
    await expect.poll(() => unread(phone), { timeout: 5_000 }).toBe("0");
    await expect.poll(() => unread(laptop), { timeout: 1_000 }).toBe("0");
    expect(await unreadBodies(laptop)).toEqual([]);
    await screenshot(laptop, "inbox-synced");

    // A reload asks the server again: still all read.
    await laptop.reload();
    await untilStatus(laptop, "open");
    await expect.poll(() => unread(laptop), { timeout: 15_000 }).toBe("0");
    expect(await bodies(laptop)).toEqual(["alert 4", "alert 3", "alert 2", "alert 1"]);
    expect(await unreadBodies(laptop)).toEqual([]);
    await publish(herald.url, "user:synced", { title: "alert", body: "alert 5" });
    for (const page of [laptop, phone]) {
      await expect.poll(() => unread(page), { timeout: 5_000 }).toBe("1");
      await expect.poll(() => unreadBodies(page)).toEqual(["alert 5"]);
    }
    // A second tab in the phone's browser shares its connection and is handed the count it missed.
    const phoneTab = await phone.context().newPage();
    await phoneTab.goto(`${herald.url}/demo/inbox?user=synced`);
    await untilStatus(phoneTab, "open", { role: "follower" });
    await expect.poll(() => unread(phoneTab), { timeout: 15_000 }).toBe("1");
    await expect.poll(() => unreadBodies(phoneTab)).toEqual(["alert 5"]);
    await screenshot(phoneTab, "inbox-synced-tab");
    await phone.context().close();
    await laptop.close();
  });

  it("serves the index with links to every demo", async () => {
    const page = await open("/");
    const links = await page
      .locator("a[href^='/demo/']")
      .evaluateAll((anchors) => anchors.map((a) => new URL((a as HTMLAnchorElement).href).pathname));
    expect(links).toEqual(["/demo/chat", "/demo/dashboard", "/demo/inbox", "/demo/ticker"]);
    await screenshot(page, "index");
    await page.close();
  });
});
