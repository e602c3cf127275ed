import { LRUCache } from "lru-cache";

/** What the first delivery of an id was answered with, so a retry gets the same answer. */
export interface RememberedDelivery {
  readonly id: string;
  readonly mailbox: string;
  readonly seq: number;
  readonly cursor: string;
}

/**
 * Delivery ids already accepted, per hook. Bounded in count and age: the
 * oldest are forgotten first. Forgetting is safe within message retention,
 * because the id also travels as the message's idempotency key and the store
 * refuses to append it twice; this memory answers retries without a store
 * round-trip and outlives retention for small mailboxes.
 */
export interface DeliveryMemory {
  recall(hookId: string, deliveryId: string): RememberedDelivery | undefined;
  remember(hookId: string, deliveryId: string, answer: RememberedDelivery): void;
}

/** Ids remembered over all hooks. */
export const MAX_REMEMBERED_DELIVERIES = 100_000;
/** Stripe retries for up to three days; Standard Webhooks senders for a few days more at most. */
export const DELIVERY_MEMORY_TTL_MS = 4 * 24 * 60 * 60 * 1000;

export function createDeliveryMemory(max = MAX_REMEMBERED_DELIVERIES, ttlMs = DELIVERY_MEMORY_TTL_MS): DeliveryMemory {
  const cache = new LRUCache<string, RememberedDelivery>({ max, ttl: ttlMs, ttlAutopurge: false });
  const key = (hookId: string, deliveryId: string) => `${hookId}\n${deliveryId}`;
  return {
    recall: (hookId, deliveryId) => cache.get(key(hookId, deliveryId)),
    remember: (hookId, deliveryId, answer) => {
      cache.set(key(hookId, deliveryId), answer);
    },
  };
}
