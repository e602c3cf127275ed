import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { hsToken, makeKey, SECRET, startAuthServer } from "./helpers/auth.js";
import { CHROMIUM, CHROMIUM_ARGS, closeContextWithPage, SCREENSHOTS } from "./helpers/chromium.js";
import { publish } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";

/** Test artifacts (under SCREENSHOTS): each demo at desktop and phone width, empty and busy; and one per behaviour test, in flows/. */
const FLOWS = join(SCREENSHOTS, "flows");
const DESKTOP = { width: 1200, height: 800 };
const PHONE = { width: 390, height: 844 };

/** A conversation for the chat's screenshots: ann is the reader, so hers are "mine". */
const CONVERSATION: readonly (readonly [string, string])[] = [
  ["bob", "morning! is the 2.4 release still on for today?"],
  ["ann", "yes — the build is green"],
  ["ann", "waiting on one review, then we tag it"],
  ["chen", "I can take the review"],
  ["chen", "link?"],
  ["ann", "#812, the retry change in the client"],
  ["bob", "the one that keeps the cursor across reloads?"],
  ["ann", "that one. nothing is missed after a reconnect now"],
  ["chen", "reading it"],
  ["bob", "nice. the dashboard looked great in the demo yesterday"],
  ["bob", "people asked how the numbers get there so fast"],
  ["ann", "one POST per sample; everyone watching gets it at once"],
  ["chen", "left two small comments, otherwise good to go"],
  ["ann", "fixed both, pushing"],
  ["chen", "approved"],
  ["bob", "nice work"],
  ["ann", "tagging 2.4.0"],
  ["bob", "I'll write the changelog"],
  ["chen", "should we mention the WebSocket ticker?"],
  ["bob", "yes, with a screenshot"],
  ["ann", "release is out"],
  ["ann", "thanks both!"],
  ["chen", "lunch?"],
  ["bob", "in 10"],
];

/** Notifications for the inbox's screenshots, oldest first. */
const NOTIFICATIONS: readonly (readonly [string, string])[] = [
  ["Welcome", "Your account is ready. Say hello to the team."],
  ["Billing", "Invoice #1042 was paid. Thank you!"],
  ["Security", "New sign-in from Firefox on Linux"],
  ["Shipping", "Your order has shipped and arrives Thursday"],
  ["Team", "Chen invited you to the release channel"],
  ["Deploy", "2.4.0 is live in production"],
  ["Reminder", "Stand-up moved to 10:30"],
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
    await mkdir(FLOWS, { recursive: true });
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
  /** Requests a page's server answered with an error (a missing favicon, asset…), by page. */
  const failed = new WeakMap<Page, string[]>();

  /** A page in a fresh context of its own, as another browser or device would open it (at desktop size). */
  async function openElsewhere(path: string, base = herald.url): Promise<Page> {
    const other = await browser.newContext({ viewport: DESKTOP });
    const page = await other.newPage();
    const failures: string[] = [];
    failed.set(page, failures);
    page.on("pageerror", (error) => console.error(`page error on ${path}:`, error));
    page.on("response", (response) => {
      const path = new URL(response.url()).pathname;
      // The inbox asks whether the server has Web Push keys; this one has none, and 404 is that answer.
      if (response.status() === 404 && path === "/v1/push/vapid-public-key") return;
      if (response.status() >= 400) failures.push(`${response.status()} ${path}`);
    });
    closeContextWithPage(page);
    await page.goto(`${base}${path}`);
    return page;
  }

  function statusText(page: Page): Promise<string | null> {
    return page.locator("#status").textContent();
  }

  /** Two frames: what a resize or a new message set off has been laid out. */
  async function settle(page: Page): Promise<void> {
    await page.evaluate(
      () => new Promise<void>((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve()))),
    );
  }

  /**
   * Saves `name`-desktop.png and `name`-phone.png of the page as it is now, checking on the way that
   * neither width scrolls sideways.
   */
  async function shoot(page: Page, name: string): Promise<void> {
    for (const [size, viewport] of [
      ["desktop", DESKTOP],
      ["phone", PHONE],
    ] as const) {
      await page.setViewportSize(viewport);
      await settle(page);
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      expect(width, `${name} at ${size} width`).toBeLessThanOrEqual(viewport.width);
      await page.screenshot({ path: join(SCREENSHOTS, `${name}-${size}.png`), animations: "disabled" });
    }
    await page.setViewportSize(DESKTOP);
    await settle(page);
  }

  /** The page links the demos' icon and nothing it asked for was missing. */
  async function expectWholePage(page: Page): Promise<void> {
    expect(await page.locator('link[rel="icon"]').getAttribute("href")).toBe("/demo/assets/favicon.svg");
    expect(failed.get(page)).toEqual([]);
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
    await page.screenshot({ path: join(FLOWS, `${name}.png`), fullPage: true });
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
    await bob.click("#send button[type=submit]");
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

  it("dashboard: the demo feed's current values at load, then updates over one long-lived connection with no polling", async () => {
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
    // One snapshot of the current values at load, then one stream.
    const api = requests.filter((path) => path.startsWith("/v1/"));
    expect(api).toEqual([`/v1/mailboxes/${encodeURIComponent("feed:demo")}/latest`, "/v1/events"]);
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
    expect(await page.locator("#messages li .values").first().textContent()).toBe("price=101");
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
    const page = await openElsewhere("/");
    const links = await page
      .locator("a[href^='/demo/']")
      .evaluateAll((anchors) => anchors.map((a) => new URL((a as HTMLAnchorElement).href).pathname));
    expect(links).toEqual(["/demo/chat", "/demo/dashboard", "/demo/inbox", "/demo/ticker"]);
    expect(await page.locator("pre").textContent()).toContain(`${herald.url}/v1/mailboxes/user:alice/messages`);
    await shoot(page, "index");
    await expectWholePage(page);
    await page.close();
  });

  it("chat: header and composer stay put while the conversation scrolls; own messages stand apart", async () => {
    const page = await openElsewhere("/demo/chat?room=screens&nick=ann&share=0");
    await untilStatus(page, "open");
    await expect.poll(() => statusText(page)).toBe("Live");
    expect(await page.locator("#status").getAttribute("title")).toMatch(/Server-Sent Events/);
    const empty = page.locator("#empty");
    await empty.waitFor();
    expect(await empty.textContent()).toContain(`curl -d hi ${herald.url}/v1/mailboxes/room:screens/messages`);
    await shoot(page, "chat-empty");

    for (const [title, body] of CONVERSATION) await publish(herald.url, "room:screens", { title, body });
    await untilBodies(page, (seen) => seen.length === CONVERSATION.length);
    expect(await empty.isVisible()).toBe(false);
    const log = page.locator("#log");
    const fromBottom = () => log.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);
    // The list scrolls between a header and a composer that stay in view; the page itself does not scroll.
    expect(await log.evaluate((el) => el.scrollHeight > el.clientHeight)).toBe(true);
    expect(await page.evaluate(() => document.documentElement.scrollHeight)).toBeLessThanOrEqual(DESKTOP.height);
    expect((await page.locator("body > header").boundingBox())?.y).toBe(0);
    const composer = await page.locator("#send").boundingBox();
    expect((composer?.y ?? Infinity) + (composer?.height ?? 0)).toBeLessThanOrEqual(DESKTOP.height);
    await expect.poll(fromBottom).toBeLessThan(2);
    // Mine on one side in the accent colour; a run of one sender's messages shows the name once.
    const mine = CONVERSATION.filter(([title]) => title === "ann").length;
    expect(await page.locator("#messages li.mine").count()).toBe(mine);
    const background = (selector: string) =>
      page
        .locator(selector)
        .first()
        .evaluate((el) => getComputedStyle(el).backgroundColor);
    expect(await background("#messages li.mine .body")).not.toBe(await background("#messages li:not(.mine) .body"));
    expect(await page.locator("#messages li.cont").count()).toBeGreaterThan(0);
    expect(await page.locator("#messages li.cont .who").count()).toBe(0);
    await shoot(page, "chat-busy");

    // Dark mode follows the system.
    const lightBackground = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.emulateMedia({ colorScheme: "dark" });
    expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).not.toBe(lightBackground);
    await page.screenshot({ path: join(SCREENSHOTS, "chat-busy-dark-desktop.png"), animations: "disabled" });
    await page.emulateMedia({ colorScheme: "light" });

    // Scrolled up to read: a new message does not pull the list down, a pill says so and takes you there.
    await log.evaluate((el) => el.scrollTo({ top: 0 }));
    await settle(page);
    await publish(herald.url, "room:screens", { title: "bob", body: "anyone around?" });
    const pill = page.locator("#new-messages");
    await pill.waitFor({ timeout: 5_000 });
    expect(await pill.textContent()).toBe("1 new message ↓");
    expect(await log.evaluate((el) => el.scrollTop)).toBe(0);
    await pill.click();
    await pill.waitFor({ state: "hidden", timeout: 5_000 });
    await expect.poll(fromBottom).toBeLessThan(2);
    // What you send yourself always shows, scrolled up or not.
    await log.evaluate((el) => el.scrollTo({ top: 0 }));
    await settle(page);
    await page.fill("#text", "here!");
    await page.press("#text", "Enter");
    await untilBodies(page, (seen) => seen.at(-1) === "here!");
    await expect.poll(fromBottom).toBeLessThan(2);
    await expectWholePage(page);
    await page.close();
  });

  it("ticker: waits visibly for the first value, then shows the latest of each and the stream", async () => {
    const page = await openElsewhere("/demo/ticker?feed=screens");
    await untilStatus(page, "open", { transport: "websocket" });
    const waiting = page.locator("#waiting");
    await waiting.waitFor();
    expect(await waiting.textContent()).toContain("feed:screens");
    expect(await page.locator("#messages").isVisible()).toBe(false);
    await shoot(page, "ticker-empty");
    let price = 100;
    const prices: number[] = [];
    for (let n = 0; n < 40; n++) {
      price = Math.round((price + Math.sin(n) * 1.5 + 0.2) * 100) / 100;
      prices.push(price);
      await publish(herald.url, "feed:screens", {
        body: `ACME ${price.toFixed(2)}`,
        data: { price, volume: 1000 + ((n * 137) % 900) },
      });
    }
    await untilBodies(page, (seen) => seen.length === prices.length);
    expect(await waiting.isVisible()).toBe(false);
    const tile = page.locator('.tile[data-field="price"]');
    expect(await tile.locator(".value").textContent()).toBe(String(prices.at(-1)));
    expect(await tile.getAttribute("data-move")).toBe((prices.at(-1) ?? 0) > (prices.at(-2) ?? 0) ? "up" : "down");
    expect(await page.locator("#count").textContent()).toBe("40");
    await shoot(page, "ticker-busy");
    await expectWholePage(page);
    await page.close();
  });

  it("inbox: says so when empty, then lists notifications with the unread ones marked", async () => {
    const page = await openElsewhere("/demo/inbox?user=screens");
    await untilStatus(page, "open");
    const empty = page.locator("#empty");
    await empty.waitFor();
    expect(await empty.textContent()).toContain(`${herald.url}/v1/mailboxes/user:screens/messages`);
    await expect.poll(() => page.locator("#unread").textContent()).toBe("0");
    await shoot(page, "inbox-empty");
    for (const [title, body] of NOTIFICATIONS) await publish(herald.url, "user:screens", { title, body });
    await untilBodies(page, (seen) => seen.length === NOTIFICATIONS.length);
    expect(await empty.isVisible()).toBe(false);
    await expect.poll(() => page.locator("#unread").textContent()).toBe(String(NOTIFICATIONS.length));
    // Reading the fourth newest reads it and everything before it.
    await page.locator("#messages li").nth(3).click();
    await expect.poll(() => page.locator("#unread").textContent()).toBe("3");
    expect(await page.locator("#messages li.is-unread").count()).toBe(3);
    await shoot(page, "inbox-busy");
    await expectWholePage(page);
    await page.close();
  });

  it("status in words, and a sentence when the server is gone; back, it catches up", async () => {
    let server = await startTestServer();
    const { port } = new URL(server.url);
    const page = await openElsewhere("/demo/chat?room=down&nick=ann&share=0", server.url);
    try {
      await untilStatus(page, "open");
      await expect.poll(() => statusText(page)).toBe("Live");
      await server.shutdown();
      await expect
        .poll(() => statusText(page), { timeout: 10_000 })
        .toBe("Offline — missed messages will arrive when back");
      const notice = page.locator('#notice[data-problem="down"]');
      await notice.waitFor();
      expect(await notice.textContent()).toContain(`Can't reach the Herald server at ${server.url}.`);
      expect(await page.locator("body").textContent()).not.toContain("Failed to fetch");
      await page.screenshot({ path: join(SCREENSHOTS, "chat-offline-desktop.png"), animations: "disabled" });

      server = await startTestServer({ config: { port: Number(port) } });
      for (const n of [1, 2])
        await publish(server.url, "room:down", { title: "bob", body: `while you were away ${n}` });
      await expect.poll(() => statusText(page), { timeout: 15_000 }).toBe("Live — caught up on 2 missed messages");
      expect(await notice.isVisible()).toBe(false);
      expect(await bodies(page)).toEqual(["while you were away 1", "while you were away 2"]);
    } finally {
      await page.close();
      await server.shutdown();
    }
  });

  it("with auth on: says the server needs a token, and every demo takes one as ?token=", async () => {
    const key = makeKey("ci", ["*"]);
    const secured = await startAuthServer({ auth: { keys: [key.entry], tokens: { hs256Secret: SECRET } } });
    try {
      const chat = await openElsewhere("/demo/chat?room=vault&nick=ann", secured.url);
      const panel = chat.locator('#notice[data-problem="auth"]');
      await panel.waitFor({ timeout: 15_000 });
      expect(await panel.locator("h2").textContent()).toBe("This server needs a token");
      expect(await panel.textContent()).toContain("?token=");
      expect(await statusText(chat)).toBe("Needs a token");
      expect(await chat.locator("#status").getAttribute("data-state")).toBe("connecting");
      await chat.screenshot({ path: join(SCREENSHOTS, "chat-needs-token-desktop.png"), animations: "disabled" });

      // The panel's field opens the page with the token.
      const token = await hsToken({ sub: "ann", mailboxes: ["room:*"], publish: ["room:*"], info: { name: "Ann" } });
      await panel.locator("input").fill(token);
      await panel.locator("button").click();
      await chat.waitForURL(/[?&]token=/);
      await untilStatus(chat, "open");
      await expect.poll(() => statusText(chat)).toBe("Live");
      expect(await chat.locator("#notice").isVisible()).toBe(false);
      await expect
        .poll(() => chat.locator("#members li").evaluateAll((items) => items.map((li) => li.dataset.sub)))
        .toEqual(["ann"]);
      await chat.fill("#text", "signed in");
      await chat.press("#text", "Enter");
      await untilBodies(chat, (seen) => seen.includes("signed in"));
      expect(await chat.locator("#messages li.mine").count()).toBe(1);
      // Links to the other demos carry the token.
      expect(
        new URL((await chat.locator("a.nav").getAttribute("href")) ?? "", secured.url).searchParams.get("token"),
      ).toBe(token);
      await chat.close();

      const inboxToken = await hsToken({ sub: "alice", mailboxes: ["user:alice"], publish: ["user:alice"] });
      const inbox = await openElsewhere(`/demo/inbox?token=${inboxToken}`, secured.url);
      await untilStatus(inbox, "open");
      expect(await inbox.locator("#user").textContent()).toBe("alice");
      await inbox.click("#test-alert");
      await untilBodies(inbox, (seen) => seen.length === 1);
      await expect.poll(() => inbox.locator("#unread").textContent()).toBe("1");
      await inbox.close();

      const tickerToken = await hsToken({ sub: "ann", mailboxes: ["feed:*"] });
      const ticker = await openElsewhere(`/demo/ticker?feed=vault&token=${tickerToken}`, secured.url);
      await untilStatus(ticker, "open", { transport: "websocket" });
      await ticker.close();

      const expired = await hsToken({ sub: "ann", mailboxes: ["room:*"], expiresIn: -60 });
      const refused = await openElsewhere(`/demo/chat?room=vault&token=${expired}`, secured.url);
      await refused.locator('#notice[data-problem="auth"] h2').waitFor({ timeout: 15_000 });
      expect(await refused.locator("#notice h2").textContent()).toBe("The server refused this page's token");
      await refused.close();
    } finally {
      await secured.shutdown();
    }
  });
});
