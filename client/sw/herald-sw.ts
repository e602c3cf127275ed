/// <reference lib="webworker" />
/**
 * Herald's service worker, served as /herald-sw.js (scope "/"): shows a Web Push message as a notification
 * while no page of this origin shows its mailbox live, and opens (or focuses) a page when one is clicked.
 * enablePush() in client/src/push.ts registers it; the `open` query parameter of its script URL
 * (`/herald-sw.js?open=/demo/inbox`) names the page a click opens when the message names none.
 *
 * Bundled on its own (SERVICE_WORKER_BUILD_OPTIONS in src/http/routes/client-bundle.ts): no imports. The empty
 * export makes this file a module for TypeScript, so `self` below is this file's, not the DOM's window.
 */
export {};

declare const self: ServiceWorkerGlobalScope;

/** What Herald pushes: a message, its fields as published; `truncated` names the fields left out to fit. */
interface PushPayload {
  readonly id: string;
  readonly mailbox: string;
  readonly cursor: string;
  /** Epoch milliseconds. */
  readonly time: number;
  readonly title?: string;
  readonly body?: string;
  readonly tags?: readonly string[];
  readonly priority?: number;
  readonly data?: unknown;
  readonly truncated?: readonly string[];
}

/** What a notification carries for its click. */
interface NotificationData {
  readonly url: string;
  readonly mailbox?: string;
  readonly id?: string;
  readonly cursor?: string;
}

/** The question a focused page answers (client/src/push-visible.ts): does it show this mailbox live? */
const VISIBLE_QUESTION = "herald:push-visible?";
/** How long a page has to answer it; a page that does not is taken as not showing the mailbox. */
const ANSWER_WAIT_MS = 300;

function httpUrl(value: unknown, base: string): URL | undefined {
  if (typeof value !== "string" || value === "") return undefined;
  try {
    const url = new URL(value, base);
    return url.protocol === "https:" || url.protocol === "http:" ? url : undefined;
  } catch {
    return undefined;
  }
}

/** The page a click opens when the message names none: `?open=` of this script (same origin only), else the scope. */
function configuredPage(): string {
  const scope = self.registration.scope;
  const open = httpUrl(new URL(self.location.href).searchParams.get("open"), scope);
  return open !== undefined && open.origin === self.location.origin ? open.href : scope;
}

/** The payload as Herald sends it, or undefined for anything else (no data, not JSON, not a message). */
function parsePayload(data: PushMessageData | null): PushPayload | undefined {
  if (data === null) return undefined;
  let value: unknown;
  try {
    value = data.json();
  } catch {
    return undefined;
  }
  const payload = value as Partial<PushPayload> | null;
  if (typeof payload !== "object" || payload === null) return undefined;
  if (typeof payload.mailbox !== "string" || typeof payload.id !== "string") return undefined;
  return payload as PushPayload;
}

/**
 * `data.url` of the message when it is a page of this origin (relative ones resolve against the scope):
 * whoever may publish to a mailbox must not be able to send its readers elsewhere from a notification
 * that looks like the site's own.
 */
function messageUrl(payload: PushPayload): string | undefined {
  const data = payload.data as { url?: unknown } | null | undefined;
  if (typeof data !== "object" || data === null) return undefined;
  const url = httpUrl(data.url, self.registration.scope);
  return url !== undefined && url.origin === self.location.origin ? url.href : undefined;
}

/** Asks one page whether it shows `mailbox` live; false when it says no or does not answer in time. */
function askPage(client: Client, mailbox: string): Promise<boolean> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => done(false), ANSWER_WAIT_MS);
    function done(visible: boolean): void {
      clearTimeout(timer);
      channel.port1.close();
      resolve(visible);
    }
    channel.port1.onmessage = (event: MessageEvent) => done((event.data as { visible?: unknown })?.visible === true);
    try {
      client.postMessage({ type: VISIBLE_QUESTION, mailbox }, [channel.port2]);
    } catch {
      done(false);
    }
  });
}

/** Whether a focused window of this origin shows `mailbox` live, so a notification would only repeat it. */
async function shownLive(mailbox: string): Promise<boolean> {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const focused = windows.filter((client) => (client as WindowClient).focused);
  if (focused.length === 0) return false;
  return new Promise((resolve) => {
    let pending = focused.length;
    for (const client of focused) {
      void askPage(client, mailbox).then((visible) => {
        pending -= 1;
        if (visible || pending === 0) resolve(visible);
      });
    }
  });
}

async function onPush(data: PushMessageData | null): Promise<void> {
  const payload = parsePayload(data);
  if (payload === undefined) {
    // Not a Herald message; a push must still show something (userVisibleOnly), so show it as it came.
    const text = data?.text() ?? "";
    await self.registration.showNotification("New notification", {
      ...(text !== "" ? { body: text.slice(0, 500) } : {}),
      data: { url: configuredPage() } satisfies NotificationData,
    });
    return;
  }
  const live = await shownLive(payload.mailbox);
  const notice: NotificationData = {
    url: messageUrl(payload) ?? configuredPage(),
    mailbox: payload.mailbox,
    id: payload.id,
    cursor: payload.cursor,
  };
  // `timestamp` is in the Notifications standard, though not in TypeScript's DOM types.
  const options: NotificationOptions & { timestamp?: number } = { tag: payload.id, data: notice };
  if (typeof payload.body === "string") options.body = payload.body;
  if (typeof payload.time === "number") options.timestamp = payload.time;
  // The page in front already shows it. (WebKit may end a subscription whose pushes show nothing; a silent
  // notification closed at once would avoid that, but in Chromium closing it lost other pushes' notifications.)
  if (live) return;
  await self.registration.showNotification(payload.title ?? payload.mailbox, options);
}

/** Two addresses of the same page: equal but for the fragment. */
function samePage(a: string, b: string): boolean {
  try {
    const left = new URL(a);
    const right = new URL(b);
    left.hash = "";
    right.hash = "";
    return left.href === right.href;
  } catch {
    return false;
  }
}

async function openPage(url: string): Promise<void> {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const existing = windows.find((client) => samePage(client.url, url)) as WindowClient | undefined;
  if (existing !== undefined) {
    await existing.focus();
    return;
  }
  await self.clients.openWindow(url);
}

self.addEventListener("install", () => {
  // Nothing to cache: a new version may take over at once.
  void self.skipWaiting();
});

self.addEventListener("activate", (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener("push", (event) => {
  event.waitUntil(onPush(event.data));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data as Partial<NotificationData> | null;
  const url = httpUrl(data?.url, self.registration.scope)?.href ?? configuredPage();
  event.waitUntil(openPage(url));
});
