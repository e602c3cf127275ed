import { parseFileConfig } from "../../src/config-file.js";
import type { PushSettings } from "../../src/push/push-config.js";
import { createVapidKeys } from "../../src/push/vapid.js";
import type { PushOptions } from "../../src/server.js";
import { createMemoryPushSubscriptions } from "../../src/store/memory-push-subscriptions.js";
import type { PushSubscriptionStore } from "../../src/store/push-subscription-store.js";
import { startTestPushService, type TestPushService, type TestSubscription } from "./push-service.js";

export const PUSH_SUBJECT = "mailto:push-tests@example.com";

/** A key pair, and the test push service that checks pushes against its public key. */
export interface PushFixture {
  readonly keys: { publicKey: string; privateKey: string };
  readonly service: TestPushService;
  /** The config file's `push` section aimed at the test push service (127.0.0.1 allowed). */
  section(extra?: Record<string, unknown>): Record<string, unknown>;
  /** Start options for an in-process Herald: it trusts the service's CA; retries start at 50 ms. */
  options(extra?: Record<string, unknown>, subscriptions?: PushSubscriptionStore): PushOptions;
  close(): Promise<void>;
}

export async function startPushFixture(): Promise<PushFixture> {
  const keys = createVapidKeys();
  const service = await startTestPushService({ vapidPublicKey: keys.publicKey, subject: PUSH_SUBJECT });
  const section = (extra: Record<string, unknown> = {}) => ({
    vapid: { ...keys, subject: PUSH_SUBJECT },
    allowedHosts: [new URL(service.url).host],
    ...extra,
  });
  return {
    keys,
    service,
    section,
    options: (extra = {}, subscriptions = createMemoryPushSubscriptions()) => ({
      settings: parseFileConfig({ push: section(extra) }, {}).push as PushSettings,
      subscriptions,
      ca: service.ca,
      backoffMs: 50,
    }),
    async close() {
      await service.close();
    },
  };
}

/** POSTs a test subscription as a browser's page would; answers the response. */
export function subscribePush(
  base: string,
  subscription: TestSubscription,
  mailboxes: string[],
  options: { headers?: Record<string, string>; query?: string } = {},
): Promise<Response> {
  const { headers = {}, query = "" } = options;
  return fetch(`${base}/v1/push/subscriptions${query}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ endpoint: subscription.endpoint, keys: subscription.keys, expirationTime: null, mailboxes }),
  });
}
