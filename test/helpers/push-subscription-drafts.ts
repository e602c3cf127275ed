import { randomBytes } from "node:crypto";
import { nanoid } from "nanoid";
import type {
  PushKeys,
  PushSaveResult,
  PushSubscription,
  PushSubscriptionBounds,
  PushSubscriptionDraft,
  PushTarget,
} from "../../src/store/push-subscription-store.js";

/** Drafts and checks for the push subscription contract suite (test/push-subscription-contract.ts). */

export const ROOMY: PushSubscriptionBounds = { maxPerOwner: 1000, maxTotal: 100_000 };

/** The contract suite's "now". */
export const T = 1_700_000_000_000;

/** An expiry later than any "now" a test uses (the contract's T, or Date.now()). */
export const LATER = Date.UTC(2100, 0, 1);

/** Keys of the right shape (65- and 16-byte values), different on every call. */
export function pushKeys(): PushKeys {
  return { p256dh: randomBytes(65).toString("base64url"), auth: randomBytes(16).toString("base64url") };
}

/** A new endpoint, unique to the call. */
export function pushEndpoint(): string {
  return `https://push.example.test/wpush/v2/${nanoid()}`;
}

/** A draft with fresh keys, expiring at `expiresAtMs` (by default, long after every test's now). */
export function pushDraft(
  endpoint: string,
  owner: string,
  mailboxes: readonly string[],
  expiresAtMs = LATER,
): PushSubscriptionDraft {
  return { endpoint, keys: pushKeys(), mailboxes, owner, expiresAtMs };
}

/** The subscription a save answered with; fails the test when it was refused. */
export function saved(result: PushSaveResult): PushSubscription {
  if (result.status === "full") throw new Error(`expected a saved subscription, got full (${result.bound})`);
  return result.subscription;
}

/** What targets() answers for a subscription. */
export function targetOf(subscription: PushSubscription): PushTarget {
  return { id: subscription.id, endpoint: subscription.endpoint, keys: subscription.keys };
}

/** Ids, sorted: targets() answers in no particular order. */
export function sortedIds(subscriptions: readonly { readonly id: string }[]): string[] {
  return subscriptions.map((s) => s.id).sort();
}
