import { createECDH } from "node:crypto";
import { assertMailboxName } from "../core/mailbox-name.js";
import { HeraldError } from "../errors.js";
import type { PushKeys } from "../store/push-subscription-store.js";

/** Mailboxes one push subscription may follow (as many as one read may name). */
export const MAX_PUSH_MAILBOXES = 64;
/** Real endpoints are a few hundred characters; FCM's are the longest. */
export const MAX_ENDPOINT_LENGTH = 2048;

/** A browser's `PushSubscription.toJSON()` plus the mailboxes it wants, as checked. */
export interface PushSubscriptionInput {
  readonly endpoint: string;
  readonly keys: PushKeys;
  readonly mailboxes: readonly string[];
  /** When the push service ends the subscription (epoch ms), as the browser said; undefined when it did not. */
  readonly expirationTime: number | undefined;
}

const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

let curveCheck: ReturnType<typeof createECDH> | undefined;

function bad(message: string): HeraldError {
  return new HeraldError("bad_message", message);
}

/**
 * Whether a push endpoint's host and port are on the list: `host` allows port 443, `host:port` that
 * port; `*.example.com` covers its subdomains, not itself.
 */
export function hostAllowed(host: string, port: number, allowedHosts: readonly string[]): boolean {
  return allowedHosts.some((allowed) => {
    const [name = "", allowedPort = "443"] = allowed.split(":");
    if (Number(allowedPort) !== port) return false;
    return name.startsWith("*.") ? host.endsWith(name.slice(1)) && host.length > name.length - 1 : host === name;
  });
}

/**
 * The one place an endpoint is let in: Herald will POST to it from inside
 * its network, so only https, only a listed host, no credentials in the URL.
 * Push services never redirect and the sender follows none.
 */
export function checkEndpoint(value: unknown, allowedHosts: readonly string[]): string {
  if (typeof value !== "string" || value.length > MAX_ENDPOINT_LENGTH) {
    throw bad(`"endpoint" must be the subscription's URL, at most ${MAX_ENDPOINT_LENGTH} characters`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad('"endpoint" is not a URL');
  }
  if (url.protocol !== "https:" || url.username !== "" || url.password !== "") {
    throw new HeraldError("push_endpoint_not_allowed", '"endpoint" must be an https URL without credentials');
  }
  // URL gives IPv6 hosts in brackets, which no allow-list entry names: they are refused.
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port === "" ? 443 : Number(url.port);
  if (!hostAllowed(host, port, allowedHosts)) {
    throw new HeraldError(
      "push_endpoint_not_allowed",
      `Herald does not send pushes to ${url.host}; the push services allowed are ${allowedHosts.join(", ")} (push.allowedHosts)`,
    );
  }
  return url.href;
}

function keyBytes(value: unknown, name: string, length: number): Buffer {
  const bytes = typeof value === "string" && BASE64URL.test(value) ? Buffer.from(value, "base64url") : undefined;
  if (bytes?.length !== length)
    throw bad(`"keys.${name}" must be ${length} bytes in base64url, as the browser gave it`);
  return bytes;
}

function checkKeys(value: unknown): PushKeys {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw bad('"keys" must be the subscription\'s {"p256dh", "auth"}');
  }
  const { p256dh, auth } = value as Record<string, unknown>;
  const point = keyBytes(p256dh, "p256dh", 65);
  keyBytes(auth, "auth", 16);
  try {
    // Refused now rather than failing every push later: the point must be on the curve.
    if (curveCheck === undefined) {
      curveCheck = createECDH("prime256v1");
      curveCheck.generateKeys();
    }
    curveCheck.computeSecret(point);
  } catch {
    throw bad('"keys.p256dh" is not a P-256 public key');
  }
  return { p256dh: (p256dh as string).replace(/=+$/, ""), auth: (auth as string).replace(/=+$/, "") };
}

function checkMailboxes(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_PUSH_MAILBOXES) {
    throw bad(`"mailboxes" must list 1 to ${MAX_PUSH_MAILBOXES} mailboxes to push`);
  }
  const mailboxes = value.map((mailbox) => assertMailboxName(mailbox));
  return [...new Set(mailboxes)];
}

/** Checks `{"endpoint", "keys": {"p256dh", "auth"}, "expirationTime"?, "mailboxes"}`. */
export function parsePushSubscription(value: unknown, allowedHosts: readonly string[]): PushSubscriptionInput {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HeraldError(
      "bad_json",
      'Send JSON: the browser\'s PushSubscription (subscription.toJSON()) plus "mailboxes": [...]',
    );
  }
  const { endpoint, keys, mailboxes, expirationTime, ...rest } = value as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) throw bad(`Unknown field "${unknown}"; send endpoint, keys, expirationTime, mailboxes`);
  if (
    expirationTime !== undefined &&
    expirationTime !== null &&
    (typeof expirationTime !== "number" || !Number.isFinite(expirationTime))
  ) {
    throw bad('"expirationTime" must be null or a number, as the browser gave it');
  }
  return {
    mailboxes: checkMailboxes(mailboxes),
    endpoint: checkEndpoint(endpoint, allowedHosts),
    keys: checkKeys(keys),
    expirationTime: typeof expirationTime === "number" ? expirationTime : undefined,
  };
}
