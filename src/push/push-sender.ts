import { Agent } from "node:https";
import { rootCertificates } from "node:tls";
import webpush from "web-push";
import type { PushTarget } from "../store/push-subscription-store.js";
import type { PushContent } from "./push-payload.js";
import type { VapidKeys } from "./vapid.js";

/** What a push service said to one push, as the dispatcher acts on it. */
export type PushOutcome =
  | { readonly kind: "sent" }
  /** 404 or 410: the subscription is gone for good (the user unsubscribed, the browser was reset). */
  | { readonly kind: "gone"; readonly status: number }
  /** 413: the payload was refused as too large. */
  | { readonly kind: "too-large" }
  /** 429, 5xx, a timeout or a network error: worth another attempt, not before `retryAfterMs` when the service said. */
  | {
      readonly kind: "retry";
      readonly status: number | undefined;
      readonly retryAfterMs: number | undefined;
      /** Why, when no push service answered (a timeout, a refused connection). */
      readonly reason?: string;
    }
  /** Any other answer (400, 401, 403…): this push is given up, the subscription kept. */
  | { readonly kind: "failed"; readonly status: number };

/** Sends one encrypted push. The dispatcher owns retries and concurrency; a sender only reports. */
export interface PushSender {
  send(target: PushTarget, content: PushContent): Promise<PushOutcome>;
  close(): void;
}

export interface WebPushSenderOptions {
  readonly vapid: VapidKeys;
  /** A socket silent this long fails the attempt. */
  readonly timeoutMs: number;
  /** Sockets per push service host (keep-alive, reused across pushes). */
  readonly maxSockets: number;
  /**
   * A CA (PEM) trusted besides the system's, for a push service with a certificate of its own making
   * (the tests'); NODE_EXTRA_CA_CERTS does the same for a whole process.
   */
  readonly ca?: string;
}

/** A VAPID token is good for 12 hours (RFC 8292 allows 24); a fresh one is signed every hour per push service. */
const VAPID_EXPIRY_SECONDS = 12 * 3600;
const VAPID_REUSE_MS = 3600_000;

/** Retry-After as seconds or an HTTP date, in ms from now; undefined when absent or unreadable. */
export function retryAfterMs(value: string | string[] | undefined, nowMs = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text.trim() === "") return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

export function outcomeOf(status: number, headers: Record<string, string | string[] | undefined>): PushOutcome {
  if (status >= 200 && status < 300) return { kind: "sent" };
  if (status === 404 || status === 410) return { kind: "gone", status };
  if (status === 413) return { kind: "too-large" };
  if (status === 429 || status >= 500)
    return { kind: "retry", status, retryAfterMs: retryAfterMs(headers["retry-after"]) };
  return { kind: "failed", status };
}

/** Sends with the `web-push` package: aes128gcm payload encryption (RFC 8291) and a VAPID signature (RFC 8292). */
export function createWebPushSender(options: WebPushSenderOptions): PushSender {
  const { vapid } = options;
  const agent = new Agent({
    keepAlive: true,
    maxSockets: options.maxSockets,
    ...(options.ca === undefined ? {} : { ca: [...rootCertificates, options.ca] }),
  });
  /** Signing is the costly part of a push after the encryption: one token per push service origin, reused. */
  const tokens = new Map<string, { authorization: string; madeAtMs: number }>();
  const authorization = (endpoint: string): string => {
    const audience = new URL(endpoint).origin;
    const now = Date.now();
    const cached = tokens.get(audience);
    if (cached !== undefined && now - cached.madeAtMs < VAPID_REUSE_MS) return cached.authorization;
    const headers = webpush.getVapidHeaders(
      audience,
      vapid.subject,
      vapid.publicKey,
      vapid.privateKey,
      "aes128gcm",
      Math.floor(now / 1000) + VAPID_EXPIRY_SECONDS,
    );
    // A handful of push services in practice; the bound only guards against a long list of allowed hosts.
    if (tokens.size > 1000) tokens.clear();
    tokens.set(audience, { authorization: headers.Authorization, madeAtMs: now });
    return headers.Authorization;
  };
  return {
    async send(subscription, content) {
      try {
        const result = await webpush.sendNotification(
          { endpoint: subscription.endpoint, keys: subscription.keys },
          content.payload,
          {
            vapidDetails: null as unknown as undefined,
            headers: { Authorization: authorization(subscription.endpoint) },
            TTL: content.ttlSeconds,
            urgency: content.urgency,
            ...(content.topic === undefined ? {} : { topic: content.topic }),
            contentEncoding: "aes128gcm",
            timeout: options.timeoutMs,
            agent,
          },
        );
        return outcomeOf(result.statusCode, result.headers);
      } catch (error) {
        if (error instanceof webpush.WebPushError) return outcomeOf(error.statusCode, error.headers);
        return { kind: "retry", status: undefined, retryAfterMs: undefined, reason: (error as Error).message };
      }
    },
    close() {
      agent.destroy();
    },
  };
}
