import { HeraldClientError, networkError, responseError } from "./errors.js";
import { authHeaders, type Endpoint, requestJson, resolveBaseUrl } from "./http.js";
import type { TokenProvider } from "./types.js";

/**
 * Web Push: the browser shows a notification for a message even while no page of the site is open. Herald's
 * service worker (/herald-sw.js, scope "/") receives the pushes; enablePush() registers it and subscribes
 * this browser to mailboxes. Failures are HeraldClientError: the server's (status and code from its answer,
 * 0 for the network), or this browser's own, with these codes:
 *
 * - `push_unsupported` (status 501): no service workers, PushManager or notifications here (an iPhone needs
 *   the page added to the Home Screen first);
 * - `push_denied` (status 403): the user (or the browser) refused notifications for this site;
 * - `push_unavailable` (status 404): the server has no Web Push keys.
 */
export interface PushOptions {
  /** Herald's base URL; defaults to the page's origin. */
  url?: string;
  token?: TokenProvider;
  fetch?: typeof fetch;
  /** The service worker's script (default "/herald-sw.js"), on the page's origin. */
  serviceWorker?: string;
}

export interface EnablePushOptions extends PushOptions {
  /** Mailboxes whose messages this browser shows as notifications (replaces what it had). */
  mailboxes: readonly string[];
  /** The page a click on a notification opens when the message has no `data.url` (default: the worker's scope). */
  openUrl?: string;
}

/** This browser's push subscription as Herald keeps it. */
export interface PushRegistration {
  readonly id: string;
  readonly mailboxes: string[];
}

export const DEFAULT_SERVICE_WORKER = "/herald-sw.js";
const SUBSCRIPTIONS_PATH = "/v1/push/subscriptions";

/** Whether this browser can receive Web Push at all (service workers, PushManager, notifications). */
export function pushSupported(): boolean {
  return (
    typeof navigator === "object" &&
    typeof navigator.serviceWorker === "object" &&
    navigator.serviceWorker !== null &&
    typeof globalThis.PushManager === "function" &&
    typeof globalThis.Notification === "function"
  );
}

function unsupported(): HeraldClientError {
  return new HeraldClientError(
    501,
    "push_unsupported",
    "This browser cannot receive Web Push (it needs service workers, PushManager and notifications; on an iPhone or iPad, add the page to the Home Screen first)",
  );
}

function endpointOf(options: PushOptions): Endpoint {
  return {
    baseUrl: resolveBaseUrl(options.url),
    token: options.token,
    fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
  };
}

/** Where the subscription's id is remembered: one per Herald server. */
function storageKey(endpoint: Endpoint): string {
  return `herald-push:${new URL(endpoint.baseUrl).origin}`;
}

function rememberedId(endpoint: Endpoint): string | undefined {
  try {
    return globalThis.localStorage?.getItem(storageKey(endpoint)) ?? undefined;
  } catch {
    return undefined;
  }
}

function remember(endpoint: Endpoint, id: string | undefined): void {
  try {
    if (id === undefined) globalThis.localStorage?.removeItem(storageKey(endpoint));
    else globalThis.localStorage?.setItem(storageKey(endpoint), id);
  } catch {
    // Storage off (a private window's policy): the subscription works, it just cannot be turned off from here.
  }
}

/**
 * The server's VAPID public key (base64url, an uncompressed P-256 point), which a push subscription names as
 * its `applicationServerKey`. Throws HeraldClientError `push_unavailable` when the server has no Web Push.
 */
export async function vapidPublicKey(options: Omit<PushOptions, "serviceWorker"> = {}): Promise<string> {
  try {
    const answer = await requestJson<{ publicKey: string }>(endpointOf(options), "/v1/push/vapid-public-key");
    return answer.publicKey;
  } catch (error) {
    // An older Herald has no such route at all: for the caller it is the same.
    if (error instanceof HeraldClientError && error.status === 404 && error.code !== "push_unavailable") {
      throw new HeraldClientError(404, "push_unavailable", "This server has no Web Push");
    }
    throw error;
  }
}

function base64UrlBytes(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, ""));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function sameBytes(a: ArrayBuffer | null | undefined, b: Uint8Array): boolean {
  if (!a || a.byteLength !== b.byteLength) return false;
  const left = new Uint8Array(a);
  return left.every((byte, i) => byte === b[i]);
}

/** The script URL as registered: the worker's path, with `?open=` when a page to open is given. */
function scriptUrl(serviceWorker: string, openUrl: string | undefined): string {
  const url = new URL(serviceWorker, location.href);
  if (openUrl !== undefined) url.searchParams.set("open", openUrl);
  return url.origin === location.origin ? `${url.pathname}${url.search}` : url.href;
}

/** Resolves once the registration has an active worker (a fresh one installs and activates first). */
function activated(registration: ServiceWorkerRegistration): Promise<ServiceWorkerRegistration> {
  const worker = registration.installing ?? registration.waiting;
  if (worker === null) return Promise.resolve(registration);
  return new Promise((resolve, reject) => {
    const check = () => {
      if (worker.state === "activated") resolve(registration);
      else if (worker.state === "redundant") {
        if (registration.active) resolve(registration);
        else reject(new HeraldClientError(500, "push_worker_failed", "The service worker failed to install"));
      }
    };
    worker.addEventListener("statechange", check);
    check();
  });
}

/** The registration whose worker is `serviceWorker` (any `?open=`), if this origin has one. */
async function findRegistration(serviceWorker: string): Promise<ServiceWorkerRegistration | undefined> {
  const path = new URL(serviceWorker, location.href).pathname;
  const registrations = await navigator.serviceWorker.getRegistrations();
  return registrations.find((registration) => {
    const worker = registration.active ?? registration.waiting ?? registration.installing;
    return worker !== null && new URL(worker.scriptURL).pathname === path;
  });
}

async function askPermission(): Promise<void> {
  let permission = Notification.permission;
  if (permission === "default") permission = await Notification.requestPermission();
  if (permission !== "granted") {
    throw new HeraldClientError(
      403,
      "push_denied",
      "Notifications are blocked for this site: allow them in the browser's site settings, then try again",
    );
  }
}

/**
 * Subscribes this browser to `mailboxes` by Web Push: registers the service worker, asks for permission to
 * show notifications (call it from a click: browsers ask only then), subscribes with the server's VAPID key
 * (reusing this browser's subscription when it has the same key) and hands the subscription to Herald.
 * Calling it again updates the mailboxes and renews the subscription, which lapses on the server when
 * nobody renews it (push.subscriptionTtlSeconds, 30 days): call it on each visit once the user turned push
 * on (permission granted, it asks nothing). Throws HeraldClientError.
 */
export async function enablePush(options: EnablePushOptions): Promise<PushRegistration> {
  if (options.mailboxes.length === 0) throw new Error("herald enablePush: name at least one mailbox");
  if (!pushSupported()) throw unsupported();
  const endpoint = endpointOf(options);
  // First, while the click that called this still counts as the user's: some browsers ask only then.
  await askPermission();
  const [publicKey, registration] = await Promise.all([
    vapidPublicKey(options),
    navigator.serviceWorker
      .register(scriptUrl(options.serviceWorker ?? DEFAULT_SERVICE_WORKER, options.openUrl))
      .then(activated),
  ]);
  const applicationServerKey = base64UrlBytes(publicKey);
  let subscription = await registration.pushManager.getSubscription();
  if (subscription !== null && !sameBytes(subscription.options.applicationServerKey, applicationServerKey)) {
    // Subscribed with another server key (the server's keys changed): that subscription cannot be used.
    await subscription.unsubscribe();
    subscription = null;
  }
  subscription ??= await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey });
  const answer = await requestJson<PushRegistration>(endpoint, SUBSCRIPTIONS_PATH, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...subscription.toJSON(), mailboxes: [...new Set(options.mailboxes)] }),
  });
  const previous = rememberedId(endpoint);
  remember(endpoint, answer.id);
  if (previous !== undefined && previous !== answer.id) {
    // The browser's old subscription (another endpoint) is gone: let the server forget it too.
    await deleteSubscription(endpoint, previous).catch(() => {});
  }
  return { id: answer.id, mailboxes: answer.mailboxes };
}

/** DELETE of a subscription: 204, or 404 when the server no longer has it (fine: nothing to undo). */
async function deleteSubscription(endpoint: Endpoint, id: string): Promise<void> {
  let response: Response;
  try {
    response = await endpoint.fetch(`${endpoint.baseUrl}${SUBSCRIPTIONS_PATH}/${encodeURIComponent(id)}`, {
      method: "DELETE",
      headers: await authHeaders(endpoint.token),
    });
  } catch (error) {
    throw networkError(error);
  }
  if (!response.ok && response.status !== 404) throw await responseError(response);
}

/**
 * Stops Web Push in this browser: removes the subscription from Herald (one it no longer has is fine) and
 * unsubscribes from the push service, so no notification comes even if the server could not be told.
 */
export async function disablePush(options: PushOptions = {}): Promise<void> {
  const endpoint = endpointOf(options);
  const id = rememberedId(endpoint);
  let failure: unknown;
  if (id !== undefined) {
    try {
      await deleteSubscription(endpoint, id);
    } catch (error) {
      failure = error;
    }
  }
  remember(endpoint, undefined);
  if (pushSupported()) {
    const registration = await findRegistration(options.serviceWorker ?? DEFAULT_SERVICE_WORKER);
    await (await registration?.pushManager.getSubscription())?.unsubscribe();
  }
  if (failure !== undefined) throw failure;
}

/** Whether this browser has a push subscription and Herald's id for it (enablePush() ran, disablePush() not since). */
export async function pushEnabled(options: PushOptions = {}): Promise<boolean> {
  if (!pushSupported()) return false;
  if (rememberedId(endpointOf(options)) === undefined) return false;
  const registration = await findRegistration(options.serviceWorker ?? DEFAULT_SERVICE_WORKER);
  return (await registration?.pushManager.getSubscription()) != null;
}
