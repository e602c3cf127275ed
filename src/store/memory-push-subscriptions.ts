import { nanoid } from "nanoid";
import { getOrCreate } from "../util/get-or-create.js";
import type {
  PushSaveResult,
  PushSubscription,
  PushSubscriptionBounds,
  PushSubscriptionDraft,
  PushSubscriptionStore,
  PushTarget,
} from "./push-subscription-store.js";
import { storeClosed } from "./store-unavailable.js";

/** Copied, so that a caller keeping its draft cannot change what the store holds. */
function subscriptionOf(
  draft: PushSubscriptionDraft,
  id: string,
  createdAtMs: number,
  nowMs: number,
): PushSubscription {
  const { endpoint, keys, mailboxes, owner, expiresAtMs } = draft;
  return {
    id,
    endpoint,
    keys: { p256dh: keys.p256dh, auth: keys.auth },
    mailboxes: [...mailboxes],
    owner,
    expiresAtMs,
    createdAtMs,
    updatedAtMs: nowMs,
  };
}

/** Push subscriptions in this process only: they are lost with it, like everything the memory store keeps. */
export class MemoryPushSubscriptions implements PushSubscriptionStore {
  readonly #byId = new Map<string, PushSubscription>();
  readonly #byEndpoint = new Map<string, string>();
  readonly #byMailbox = new Map<string, Set<string>>();
  readonly #byOwner = new Map<string, Set<string>>();
  #closed = false;

  async save(draft: PushSubscriptionDraft, bounds: PushSubscriptionBounds, nowMs: number): Promise<PushSaveResult> {
    this.#assertOpen();
    const previousId = this.#byEndpoint.get(draft.endpoint);
    const previous = previousId === undefined ? undefined : this.#byId.get(previousId);
    if (previous?.owner === draft.owner) {
      const lapsed = previous.expiresAtMs <= nowMs;
      if (lapsed && this.#unexpiredOf(draft.owner, nowMs) >= bounds.maxPerOwner)
        return { status: "full", bound: "owner" };
      const subscription = subscriptionOf(draft, previous.id, previous.createdAtMs, nowMs);
      this.#unlink(previous);
      this.#link(subscription);
      return { status: "updated", subscription };
    }
    if (this.#unexpiredOf(draft.owner, nowMs) >= bounds.maxPerOwner) return { status: "full", bound: "owner" };
    if (this.#byId.size - (previous ? 1 : 0) >= bounds.maxTotal) return { status: "full", bound: "total" };
    if (previous) this.#unlink(previous);
    const subscription = subscriptionOf(draft, nanoid(), nowMs, nowMs);
    this.#link(subscription);
    return { status: "created", subscription, replaced: previous !== undefined };
  }

  async get(id: string): Promise<PushSubscription | undefined> {
    this.#assertOpen();
    return this.#byId.get(id);
  }

  async remove(id: string, endpoint?: string): Promise<boolean> {
    this.#assertOpen();
    const subscription = this.#byId.get(id);
    if (subscription === undefined || (endpoint !== undefined && subscription.endpoint !== endpoint)) return false;
    this.#unlink(subscription);
    return true;
  }

  async targets(mailbox: string, nowMs: number): Promise<PushTarget[]> {
    this.#assertOpen();
    const targets: PushTarget[] = [];
    for (const id of this.#byMailbox.get(mailbox) ?? []) {
      const { endpoint, keys, expiresAtMs } = this.#byId.get(id) as PushSubscription;
      if (expiresAtMs > nowMs) targets.push({ id, endpoint, keys });
    }
    return targets;
  }

  async prune(nowMs: number, max: number): Promise<number> {
    this.#assertOpen();
    // A scan of every subscription: the memory store is for one process and small numbers.
    const expired = [...this.#byId.values()]
      .filter((subscription) => subscription.expiresAtMs <= nowMs)
      .sort((a, b) => a.expiresAtMs - b.expiresAtMs)
      .slice(0, Math.max(0, max));
    for (const subscription of expired) this.#unlink(subscription);
    return expired.length;
  }

  async count(): Promise<number> {
    this.#assertOpen();
    return this.#byId.size;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #assertOpen(): void {
    if (this.#closed) throw storeClosed();
  }

  /** How many of the owner's subscriptions have not expired at `nowMs`: what its bound counts. */
  #unexpiredOf(owner: string, nowMs: number): number {
    let n = 0;
    for (const id of this.#byOwner.get(owner) ?? []) {
      if ((this.#byId.get(id) as PushSubscription).expiresAtMs > nowMs) n++;
    }
    return n;
  }

  #link(subscription: PushSubscription): void {
    this.#byId.set(subscription.id, subscription);
    this.#byEndpoint.set(subscription.endpoint, subscription.id);
    getOrCreate(this.#byOwner, subscription.owner, () => new Set()).add(subscription.id);
    for (const mailbox of subscription.mailboxes) {
      getOrCreate(this.#byMailbox, mailbox, () => new Set()).add(subscription.id);
    }
  }

  #unlink(subscription: PushSubscription): void {
    const { id } = subscription;
    this.#byId.delete(id);
    if (this.#byEndpoint.get(subscription.endpoint) === id) this.#byEndpoint.delete(subscription.endpoint);
    forget(this.#byOwner, subscription.owner, id);
    for (const mailbox of subscription.mailboxes) forget(this.#byMailbox, mailbox, id);
  }
}

/** Drops `id` from the set at `key`, and the set once empty, so that names no longer used take no room. */
function forget(index: Map<string, Set<string>>, key: string, id: string): void {
  const ids = index.get(key);
  ids?.delete(id);
  if (ids?.size === 0) index.delete(key);
}

export function createMemoryPushSubscriptions(): MemoryPushSubscriptions {
  return new MemoryPushSubscriptions();
}
