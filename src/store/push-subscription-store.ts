/** A browser's push subscription keys (RFC 8291): its ECDH public key and auth secret, base64url. */
export interface PushKeys {
  /** The user agent's P-256 public key, uncompressed (65 bytes), base64url. */
  readonly p256dh: string;
  /** The 16-byte authentication secret, base64url. */
  readonly auth: string;
}

/** What a browser hands over (its `PushSubscription` JSON) and which mailboxes it wants pushed. */
export interface PushSubscriptionDraft {
  /** The push service URL Herald POSTs to; unique across the store. */
  readonly endpoint: string;
  readonly keys: PushKeys;
  /** Mailboxes whose messages are pushed to it: 1 or more, no repeats. */
  readonly mailboxes: readonly string[];
  /** Who subscribed (`sub:<token sub>`, `key:<key name>`, `address:<client>`): the per-owner bound counts by it. */
  readonly owner: string;
  /**
   * When it lapses unless saved again (epoch ms): a browser's page renews it by posting it again, so one
   * nobody renews (a user whose access ended, an abandoned browser, junk) stops receiving and is pruned.
   */
  readonly expiresAtMs: number;
}

/** What sending to a subscription takes. */
export interface PushTarget {
  readonly id: string;
  readonly endpoint: string;
  readonly keys: PushKeys;
}

export interface PushSubscription extends PushSubscriptionDraft {
  readonly id: string;
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
}

/** How many subscriptions may exist at once. */
export interface PushSubscriptionBounds {
  readonly maxPerOwner: number;
  readonly maxTotal: number;
}

export type PushSaveResult =
  /** A new subscription; `replaced` is true when it took over an endpoint another owner had subscribed. */
  | { readonly status: "created"; readonly subscription: PushSubscription; readonly replaced: boolean }
  /** The endpoint was already subscribed by the same owner: keys and mailboxes replaced, id kept. */
  | { readonly status: "updated"; readonly subscription: PushSubscription }
  /** A bound would be passed; nothing changed. */
  | { readonly status: "full"; readonly bound: "owner" | "total" };

/**
 * PushSubscriptionStore keeps the browsers that asked for Web Push, by
 * endpoint: an endpoint is one browser profile's subscription with one push
 * service, so it is subscribed at most once. Re-saving an endpoint updates it
 * in place (same owner, same id) or hands it to the new owner under a new id
 * (a browser whose user changed): the old owner's id then names nothing. The
 * shared contract suite (test/push-subscription-contract.ts) runs on every
 * backend.
 *
 * Like MailboxStore, a backend that cannot answer rejects with the
 * catalogue's `store_unavailable`, and with nothing else.
 */
export interface PushSubscriptionStore {
  /**
   * Creates or updates the subscription of `draft.endpoint`, atomically
   * across nodes. Bounds count subscriptions after the save: updating one in
   * place never passes a bound, unless it had lapsed (renewing a lapsed one
   * counts as a new one for its owner's bound); a new one (or a takeover, for the new owner)
   * is refused as `full` when its owner already has `maxPerOwner`, or the
   * store `maxTotal` (a takeover leaves the total as it was, so only its new
   * owner's bound can refuse it while the total is within bounds). The
   * per-owner bound counts the owner's unexpired subscriptions (at `nowMs`);
   * the total counts every stored one, expired or not, until pruned. Saving
   * again also renews: the record takes the draft's `expiresAtMs`.
   */
  save(draft: PushSubscriptionDraft, bounds: PushSubscriptionBounds, nowMs: number): Promise<PushSaveResult>;

  /** A subscription by id, or undefined; an expired one too, until pruned. */
  get(id: string): Promise<PushSubscription | undefined>;

  /**
   * Removes a subscription by id; true when it existed. With `endpoint`,
   * only while the id still has that endpoint (a push service's "gone" must
   * not remove what a browser subscribed again since).
   */
  remove(id: string, endpoint?: string): Promise<boolean>;

  /**
   * The unexpired subscriptions (`expiresAtMs > nowMs`) that include `mailbox`, in no particular order
   * (at most the store's maxTotal): the lean form sending needs, read on every publish to the mailbox.
   */
  targets(mailbox: string, nowMs: number): Promise<PushTarget[]>;

  /** Removes at most `max` subscriptions expired at `nowMs` (the earliest first); answers how many. */
  prune(nowMs: number, max: number): Promise<number>;

  /** Subscriptions in all. */
  count(): Promise<number>;

  /** Releases connections; calls after close reject. Whoever built the store closes it. */
  close(): Promise<void>;
}
