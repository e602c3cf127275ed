import { generateKeyPairSync, randomBytes } from "node:crypto";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Browser, BrowserContext, BrowserContextOptions, CDPSession, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_PUSH_LIMITS } from "../src/push/push-config.js";
import { createVapidKeys } from "../src/push/vapid.js";
import type { RunningHerald } from "../src/server.js";
import { createMemoryPushSubscriptions } from "../src/store/memory-push-subscriptions.js";
import { closeContextWithPage, HAVE_CHROMIUM, IN_CI, launchChromium, PHONE, SCREENSHOTS } from "./helpers/chromium.js";
import { startTestServer } from "./helpers/server.js";

const DESKTOP: BrowserContextOptions = { viewport: { width: 1200, height: 800 } };

/** A push payload as Herald sends it (the service worker's input). */
interface PushPayload {
  id: string;
  mailbox: string;
  cursor: string;
  time: number;
  title?: string;
  body?: string;
  data?: unknown;
}

/** A notification as registration.getNotifications() shows it. */
interface Shown {
  title: string;
  body: string;
  tag: string;
  data: { url?: string; mailbox?: string; id?: string; cursor?: string } | null;
}

/** A browser's subscription keys, as a real one would hold them: a P-256 public key and a 16-byte secret. */
function userAgentKeys(): { p256dh: string; auth: string } {
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const jwk = publicKey.export({ format: "jwk" });
  const point = Buffer.concat([
    Buffer.from([4]),
    Buffer.from(jwk.x ?? "", "base64url"),
    Buffer.from(jwk.y ?? "", "base64url"),
  ]);
  return { p256dh: point.toString("base64url"), auth: randomBytes(16).toString("base64url") };
}

/**
 * Headless Chromium reaches no push service, so pushManager.subscribe() and getSubscription() answer a
 * subscription of their own (kept in localStorage across reloads, as the browser keeps a real one), and
 * every call is recorded in `heraldPushCalls`.
 */
function stubPushManager(fake: { endpoint: string; p256dh: string; auth: string }): void {
  const KEY = "herald-test:fake-push-subscription";
  const calls: string[] = [];
  (globalThis as { heraldPushCalls?: string[] }).heraldPushCalls = calls;
  const bytes = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0)).buffer;
  const make = (serverKey: string) => ({
    endpoint: fake.endpoint,
    expirationTime: null,
    options: { userVisibleOnly: true, applicationServerKey: bytes(serverKey) },
    getKey: () => null,
    toJSON: () => ({ endpoint: fake.endpoint, expirationTime: null, keys: { p256dh: fake.p256dh, auth: fake.auth } }),
    unsubscribe: async () => {
      calls.push("unsubscribe");
      localStorage.removeItem(KEY);
      return true;
    },
  });
  PushManager.prototype.subscribe = async function subscribe(options?: PushSubscriptionOptionsInit) {
    calls.push(`subscribe userVisibleOnly=${options?.userVisibleOnly}`);
    const key = new Uint8Array(options?.applicationServerKey as Uint8Array);
    const serverKey = btoa(String.fromCharCode(...key));
    localStorage.setItem(KEY, serverKey);
    return make(serverKey) as unknown as PushSubscription;
  };
  PushManager.prototype.getSubscription = async function getSubscription() {
    const serverKey = localStorage.getItem(KEY);
    return (serverKey === null ? null : make(serverKey)) as unknown as PushSubscription | null;
  };
}

let sequence = 0;
function payload(mailbox: string, fields: Partial<PushPayload> = {}): PushPayload {
  sequence += 1;
  return { id: `msg-${sequence}`, mailbox, cursor: `cursor-${sequence}`, time: Date.now(), ...fields };
}

/** A page of the origin, its CDP session, and the service worker registration DevTools knows it by. */
/** How long one delivery gets to show its notification before it is delivered again. */
const DELIVERY_WAIT_MS = 8000;
const DELIVERIES = 3;

/**
 * Delivers `message` until the worker shows a notification with its tag, and returns that
 * notification. On a busy machine (the whole suite at once) CDP's delivery into a worker was
 * seen to be lost; delivering again is harmless, since a notification with the same tag
 * replaces the first. Only for tests of what a notification says, never of whether one shows.
 */
async function shownFor(pushable: Pushable, message: PushPayload): Promise<Shown> {
  for (let delivery = 0; delivery < DELIVERIES; delivery++) {
    await pushable.push(message);
    const deadline = Date.now() + DELIVERY_WAIT_MS;
    while (Date.now() < deadline) {
      const shown = (await pushable.notifications()).find((n) => n.tag === message.id);
      if (shown) return shown;
      await sleep(100);
    }
  }
  throw new Error(`no notification for ${message.id} after ${DELIVERIES} deliveries`);
}

interface Pushable {
  readonly page: Page;
  readonly problems: string[];
  /** Delivers a push message to the page's service worker, as the push service would. */
  push(message: PushPayload): Promise<void>;
  /** The notifications the service worker shows now. */
  notifications(): Promise<Shown[]>;
}

describe.skipIf(!HAVE_CHROMIUM && !IN_CI)("Web Push in Chromium", () => {
  let herald: RunningHerald;
  let browser: Browser;

  beforeAll(async () => {
    herald = await startTestServer();
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await herald?.shutdown();
  });

  /** A context of its own (own service workers and storage) with notifications allowed for the server's origin. */
  async function newContext(options: BrowserContextOptions = DESKTOP): Promise<BrowserContext> {
    const context = await browser.newContext(options);
    await context.grantPermissions(["notifications"], { origin: herald.url });
    return context;
  }

  function watch(page: Page): string[] {
    const problems: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console error: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("response", (response) => {
      if (response.status() >= 400) problems.push(`${response.status()} ${new URL(response.url()).pathname}`);
    });
    return problems;
  }

  /** The registration id DevTools gives the registration with `scope`, once it has an activated version. */
  async function registrationId(cdp: CDPSession, scope: string): Promise<string> {
    const registrations = new Map<string, string>();
    const activated = new Set<string>();
    cdp.on("ServiceWorker.workerRegistrationUpdated", (event) => {
      for (const registration of event.registrations) {
        if (!registration.isDeleted) registrations.set(registration.registrationId, registration.scopeURL);
      }
    });
    cdp.on("ServiceWorker.workerVersionUpdated", (event) => {
      for (const version of event.versions) {
        if (version.status === "activated") activated.add(version.registrationId);
      }
    });
    await cdp.send("ServiceWorker.enable");
    let found: string | undefined;
    await expect
      .poll(
        () => {
          found = [...registrations].find(([id, url]) => url === scope && activated.has(id))?.[0];
          return found;
        },
        { timeout: 10_000 },
      )
      .toBeDefined();
    return found as string;
  }

  /** A page at `path` with Herald's service worker registered (by the page, as enablePush does) and active. */
  async function openPushable(context: BrowserContext, path: string, script = "/herald-sw.js"): Promise<Pushable> {
    const page = await context.newPage();
    const problems = watch(page);
    closeContextWithPage(page);
    await page.goto(`${herald.url}${path}`);
    const scope = await page.evaluate(async (url) => {
      await navigator.serviceWorker.register(url);
      const registration = await navigator.serviceWorker.ready;
      // `ready` resolves while the worker may still be activating; a push delivered then can be lost on a busy machine.
      for (let waited = 0; registration.active?.state !== "activated" && waited < 10_000; waited += 20) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return registration.scope;
    }, script);
    expect(scope).toBe(`${herald.url}/`);
    const cdp = await context.newCDPSession(page);
    const id = await registrationId(cdp, scope);
    const origin = new URL(herald.url).origin;
    return {
      page,
      problems,
      push: async (message) => {
        await cdp.send("ServiceWorker.deliverPushMessage", {
          origin,
          registrationId: id,
          data: JSON.stringify(message),
        });
      },
      notifications: () =>
        page.evaluate(async () => {
          const registration = await navigator.serviceWorker.ready;
          return (await registration.getNotifications()).map((n) => ({
            title: n.title,
            body: n.body,
            tag: n.tag,
            data: n.data,
          }));
        }),
    };
  }

  it("serves the service worker for the whole origin, never cached stale", async () => {
    const response = await fetch(`${herald.url}/herald-sw.js?open=/demo/inbox`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/javascript");
    expect(response.headers.get("cache-control")).toBe("no-cache");
    expect(response.headers.get("service-worker-allowed")).toBe("/");
    const code = await response.text();
    // A classic script: no module syntax, which a worker registered without { type: "module" } cannot run.
    expect(code).not.toMatch(/^\s*(import|export)\b/m);
    expect(code).toContain("herald:push-visible?");
  });

  it("shows a pushed message as a notification with its title, body and where a click goes", async () => {
    const context = await newContext();
    // The page a click opens, unless the message names one: `?open=` of the worker's script.
    const script = `/herald-sw.js?open=${encodeURIComponent("/demo/inbox?user=a")}`;
    const pushable = await openPushable(context, "/", script);
    const { page, problems } = pushable;
    const message = payload("user:push-a", { title: "Build failed", body: "main is red" });
    expect(await shownFor(pushable, message)).toEqual({
      title: "Build failed",
      body: "main is red",
      tag: message.id,
      data: { url: `${herald.url}/demo/inbox?user=a`, mailbox: "user:push-a", id: message.id, cursor: message.cursor },
    });
    // No title: the mailbox is the title; a data.url the message carries is where a click goes.
    const untitled = payload("user:push-a", { body: "no title", data: { url: "/demo/chat?room=7" } });
    expect(await shownFor(pushable, untitled)).toMatchObject({
      title: "user:push-a",
      body: "no title",
      data: { url: `${herald.url}/demo/chat?room=7` },
    });
    // A data.url that is not http(s), or not of this origin, is not followed: whoever may publish to the
    // mailbox must not send its readers elsewhere from a notification that looks like the site's own.
    for (const url of ["javascript:alert(1)", "https://phishing.example/login", "http://127.0.0.1:1/x"]) {
      const elsewhere = payload("user:push-a", { title: "elsewhere", data: { url } });
      expect((await shownFor(pushable, elsewhere)).data?.url).toBe(`${herald.url}/demo/inbox?user=a`);
    }
    expect(problems).toEqual([]);
    await page.close();
  });

  it("shows nothing for a mailbox a focused page shows live, and shows other mailboxes' messages", async () => {
    const context = await newContext();
    const pushable = await openPushable(context, "/");
    const { page, push, notifications, problems } = pushable;
    await page.bringToFront();
    // A module script (vitest would rewrite an import() inside page.evaluate) with an open subscribe().
    await page.addScriptTag({
      type: "module",
      content: `import { subscribe } from "/client.js";
        globalThis.heraldTest = subscribe(["user:push-b"], {}, { cursor: "now" });`,
    });
    await page.waitForFunction(
      () => (globalThis as { heraldTest?: { status: { state: string } } }).heraldTest?.status.state === "open",
    );
    expect(await page.evaluate(() => document.visibilityState === "visible" && document.hasFocus())).toBe(true);

    const shownLive = payload("user:push-b", { title: "seen live" });
    const elsewhere = payload("user:push-other", { title: "other mailbox" });
    await push(shownLive);
    // A fresh worker's first pushes can take seconds on a busy machine.
    const shown = await shownFor(pushable, elsewhere);
    expect(shown.title).toBe("other mailbox");
    // No `?open=` and no data.url: a click opens the worker's scope.
    expect(shown.data?.url).toBe(`${herald.url}/`);
    // The two were handled in order, each within the worker's 300 ms wait: the first had its answer by now.
    await sleep(500);
    expect((await notifications()).map((n) => n.title)).toEqual(["other mailbox"]);

    // Closed, the subscription no longer covers the mailbox: its messages are notified again.
    await page.evaluate(() => (globalThis as unknown as { heraldTest: { close(): void } }).heraldTest.close());
    const afterClose = payload("user:push-b", { title: "after close" });
    expect((await shownFor(pushable, afterClose)).title).toBe("after close");
    expect(problems).toEqual([]);
    await page.close();
  });

  /** Inbox pages: loaded, live, and the push switch settled (enabled, or disabled with its note). */
  async function openInbox(context: BrowserContext, url: string): Promise<{ page: Page; problems: string[] }> {
    const page = await context.newPage();
    const problems = watch(page);
    closeContextWithPage(page);
    await page.goto(url);
    await page.locator('#status[data-state="open"]').waitFor({ timeout: 15_000 });
    await page.waitForFunction(() => {
      const toggle = document.getElementById("push-switch") as HTMLInputElement;
      return !toggle.disabled || !(document.getElementById("push-note") as HTMLElement).hidden;
    });
    return { page, problems };
  }

  it("inbox: the switch is off with an explanation where the server has no push keys or the browser no Web Push", async () => {
    const context = await newContext();
    const { page, problems } = await openInbox(context, `${herald.url}/demo/inbox?user=nokeys`);
    const toggle = page.getByRole("switch", { name: "Notify me when closed" });
    await expect(toggle.isDisabled()).resolves.toBe(true);
    await expect(toggle.isChecked()).resolves.toBe(false);
    expect(await page.locator("#push-note").textContent()).toBe(
      "This server has no Web Push keys: see README, Web Push.",
    );
    await expect(page.locator("#action-error").isHidden()).resolves.toBe(true);
    await page.locator("#empty").waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, "inbox-push-unavailable-desktop.png") });
    // The 404 that says so is the only thing that went wrong.
    expect(problems.filter((problem) => !problem.includes("404"))).toEqual([]);
    expect(problems.some((problem) => problem.includes("/v1/push/vapid-public-key"))).toBe(true);
    await page.close();

    const old = await newContext({ ...PHONE, colorScheme: "dark" });
    await old.addInitScript(() => {
      // A browser without Web Push (as Safari on an iPhone is, outside the Home Screen).
      delete (globalThis as { PushManager?: unknown }).PushManager;
    });
    const bare = await openInbox(old, `${herald.url}/demo/inbox?user=nokeys`);
    await expect(bare.page.getByRole("switch").isDisabled()).resolves.toBe(true);
    expect(await bare.page.locator("#push-note").textContent()).toContain("This browser cannot show notifications");
    await bare.page.locator("#empty").waitFor();
    await bare.page.screenshot({ path: join(SCREENSHOTS, "inbox-push-unsupported-phone-dark.png") });
    expect(bare.problems).toEqual([]);
    await bare.page.close();
  });

  describe("with push keys", () => {
    let pushHerald: RunningHerald;

    beforeAll(async () => {
      pushHerald = await startTestServer({
        push: {
          settings: { ...DEFAULT_PUSH_LIMITS, vapid: { ...createVapidKeys(), subject: "mailto:test@example.com" } },
          subscriptions: createMemoryPushSubscriptions(),
        },
      });
    });

    afterAll(() => pushHerald?.shutdown());

    it("inbox: the switch subscribes this browser (201), survives a reload, and unsubscribes it (204)", async () => {
      const context = await browser.newContext(DESKTOP);
      await context.grantPermissions(["notifications"], { origin: pushHerald.url });
      const fake = {
        endpoint: `https://fcm.googleapis.com/fcm/send/test-${randomBytes(8).toString("hex")}`,
        ...userAgentKeys(),
      };
      await context.addInitScript(stubPushManager, fake);
      const { page, problems } = await openInbox(context, `${pushHerald.url}/demo/inbox?user=pushy`);
      const toggle = page.getByRole("switch", { name: "Notify me when closed" });
      await expect(toggle.isEnabled()).resolves.toBe(true);
      await expect(toggle.isChecked()).resolves.toBe(false);
      await expect(page.locator("#push-note").isHidden()).resolves.toBe(true);

      const posted = page.waitForResponse(
        (response) =>
          response.request().method() === "POST" && new URL(response.url()).pathname === "/v1/push/subscriptions",
      );
      await toggle.click();
      const created = await posted;
      expect(created.status()).toBe(201);
      expect(created.request().postDataJSON()).toEqual({
        endpoint: fake.endpoint,
        expirationTime: null,
        keys: { p256dh: fake.p256dh, auth: fake.auth },
        mailboxes: ["user:pushy"],
      });
      const { id } = (await created.json()) as { id: string };
      await expect.poll(() => toggle.isChecked(), { timeout: 10_000 }).toBe(true);
      await expect.poll(() => toggle.isEnabled(), { timeout: 10_000 }).toBe(true);
      expect(await page.evaluate(() => (globalThis as { heraldPushCalls?: string[] }).heraldPushCalls)).toEqual([
        "subscribe userVisibleOnly=true",
      ]);
      const origin = new URL(pushHerald.url).origin;
      expect(await page.evaluate((key) => localStorage.getItem(key), `herald-push:${origin}`)).toBe(id);
      // The worker opens this inbox when a notification is clicked.
      const script = await page.evaluate(async () => (await navigator.serviceWorker.ready).active?.scriptURL);
      expect(script).toBe(`${pushHerald.url}/herald-sw.js?open=%2Fdemo%2Finbox%3Fuser%3Dpushy`);
      await page.screenshot({ path: join(SCREENSHOTS, "inbox-push-on-desktop.png") });

      // Reloaded (or opened on a phone-sized window of the same browser), the switch still says on, and the
      // page renews the subscription (200, the same id), which would otherwise lapse on the server.
      await page.setViewportSize(PHONE.viewport ?? { width: 390, height: 844 });
      const renewed = page.waitForResponse(
        (response) =>
          response.request().method() === "POST" && new URL(response.url()).pathname === "/v1/push/subscriptions",
      );
      await page.reload();
      const renewal = await renewed;
      expect(renewal.status()).toBe(200);
      expect(((await renewal.json()) as { id: string }).id).toBe(id);
      await page.locator('#status[data-state="open"]').waitFor({ timeout: 15_000 });
      await expect.poll(() => toggle.isEnabled(), { timeout: 10_000 }).toBe(true);
      await expect(toggle.isChecked()).resolves.toBe(true);
      await page.locator("#empty").waitFor();
      expect(
        await page.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth),
      ).toBe(false);
      await page.screenshot({ path: join(SCREENSHOTS, "inbox-push-on-phone.png") });

      const deleted = page.waitForResponse(
        (response) =>
          response.request().method() === "DELETE" &&
          new URL(response.url()).pathname === `/v1/push/subscriptions/${id}`,
      );
      await toggle.click();
      expect((await deleted).status()).toBe(204);
      await expect.poll(() => toggle.isChecked(), { timeout: 10_000 }).toBe(false);
      await expect.poll(() => toggle.isEnabled(), { timeout: 10_000 }).toBe(true);
      expect(await page.evaluate(() => (globalThis as { heraldPushCalls?: string[] }).heraldPushCalls)).toEqual([
        "unsubscribe",
      ]);
      expect(await page.evaluate((key) => localStorage.getItem(key), `herald-push:${origin}`)).toBeNull();
      await expect(page.locator("#action-error").isHidden()).resolves.toBe(true);
      expect(problems).toEqual([]);
      await page.close();
    });

    it("inbox: a refused permission is said in the page's error area, and the switch stays off", async () => {
      const context = await browser.newContext(PHONE);
      // No grant, and Chromium headless answers a permission prompt with a denial.
      const fake = {
        endpoint: `https://fcm.googleapis.com/fcm/send/test-${randomBytes(8).toString("hex")}`,
        ...userAgentKeys(),
      };
      await context.addInitScript(stubPushManager, fake);
      const { page } = await openInbox(context, `${pushHerald.url}/demo/inbox?user=refuser`);
      const toggle = page.getByRole("switch", { name: "Notify me when closed" });
      await toggle.click();
      await page.locator("#action-error").waitFor();
      expect(await page.locator("#action-error").textContent()).toContain("Notifications are blocked for this site");
      await expect.poll(() => toggle.isChecked(), { timeout: 10_000 }).toBe(false);
      await page.screenshot({ path: join(SCREENSHOTS, "inbox-push-denied-phone.png") });
      await page.close();
    });
  });
});
