/**
 * A publish waiting for its time. Its `id` is the id the message will have
 * once delivered; `fieldsJson` is what the publisher set, serialized once.
 */
export interface ScheduledDraft {
  readonly id: string;
  readonly mailbox: string;
  /** When it falls due, epoch ms. */
  readonly dueAtMs: number;
  /** The publisher's fields as a serialized JSON object, e.g. `{"title":"x"}`. */
  readonly fieldsJson: string;
  /** How long the message is retained once delivered. */
  readonly ttlMs: number;
  /** The publisher's idempotency key; the delivered message carries it. */
  readonly idempotencyKey?: string;
  /** Identifies the scheduled publish (fields and schedule as asked), so a reused key with another one is detected. */
  readonly fingerprint?: string;
}

/** A pending entry, as the store keeps it. */
export type ScheduledEntry = ScheduledDraft;

/** What a reused idempotency key points at: the entry first scheduled under it (pending or delivered since). */
export interface ScheduledOriginal {
  readonly id: string;
  readonly mailbox: string;
  readonly dueAtMs: number;
}

export type ScheduleAddResult =
  | { readonly status: "scheduled"; readonly entry: ScheduledOriginal }
  /** The key was used with the same fingerprint; nothing was added, `entry` is the original. */
  | { readonly status: "duplicate"; readonly entry: ScheduledOriginal }
  /** The key was used with another fingerprint; nothing of the call was added. */
  | { readonly status: "conflict"; readonly entry: ScheduledOriginal }
  /** A bound would be passed (`mailbox` names the full one, or is undefined for the whole store); nothing was added. */
  | { readonly status: "full"; readonly mailbox: string | undefined };

/** How many entries may wait at once. */
export interface ScheduleBounds {
  readonly maxPerMailbox: number;
  readonly maxTotal: number;
}

export type CancelResult =
  | "cancelled"
  /** Claimed by a delivery whose lease has not ended: it is being appended now. */
  | "delivering"
  /** Unknown, delivered or cancelled before. */
  | "missing";

/** A claimed entry that was appended (or found already appended), and when its message expires. */
export interface CompletedDelivery {
  readonly entry: ScheduledEntry;
  /** The delivered message's expiry; a key record is kept until then. Undefined for an entry dropped unappended. */
  readonly expiresAtMs: number | undefined;
}

/** Idempotency records of delivered entries the memory schedule keeps at most, the oldest forgotten first (others expire them). */
export const DEFAULT_MAX_DELIVERED_KEYS = 100_000;

/**
 * ScheduleStore keeps publishes that wait for their time, outside every
 * mailbox's log: a pending entry is invisible to reads and streams, and is
 * appended (getting its seq then) by whichever node claims it once due. The
 * shared contract suite (test/schedule-contract.ts) runs on every backend.
 *
 * Delivery is claim, append, complete. `claim` hands out due entries under a
 * lease; a claim that is not completed (its node died, its append failed) is
 * handed out again once the lease ends. The append carries an idempotency key
 * per entry, so appending a re-claimed entry twice stores it once: together
 * that is exactly once in the log.
 *
 * Like MailboxStore, a backend that cannot answer rejects with the
 * catalogue's `store_unavailable` (Retry-After: 1), and with nothing else.
 */
export interface ScheduleStore {
  /**
   * Adds entries, all or none. An entry whose idempotency key (per mailbox)
   * names an entry still remembered — pending, or delivered and its message
   * not yet expired — is not added again: the same fingerprint is a
   * `duplicate`, another is a `conflict`. When any item conflicts or a bound
   * would be passed (pending entries per mailbox, or in all, counting only
   * what this call adds), nothing is added and the answer is that one result;
   * otherwise the results are in item order.
   */
  add(drafts: readonly ScheduledDraft[], bounds: ScheduleBounds): Promise<ScheduleAddResult[]>;

  /** Pending entries of one mailbox (claimed ones too, until completed), earliest due first, at most `limit`. */
  list(mailbox: string, limit: number): Promise<ScheduledEntry[]>;

  /** A pending entry by id, or undefined. */
  get(id: string): Promise<ScheduledEntry | undefined>;

  /**
   * Removes a pending entry and frees its idempotency key. An entry claimed
   * under a lease that has not ended is left alone ("delivering"); one whose
   * lease ended may be cancelled, though its dead claimer may have appended it.
   */
  cancel(id: string, nowMs: number): Promise<CancelResult>;

  /**
   * Hands out at most `max` entries due at `nowMs` (or whose lease ended), the
   * earliest first, entries due at the same moment in the order they were
   * added, and leases them until `leaseUntilMs`: no other claim gets them
   * before then. Atomic across every node sharing the backend.
   */
  claim(nowMs: number, leaseUntilMs: number, max: number): Promise<ScheduledEntry[]>;

  /**
   * Removes claimed entries that were appended. An entry's idempotency record
   * then lives until `expiresAtMs`, so a repeat of its publish is still a
   * duplicate; an entry with none is forgotten at once. Completing an entry
   * that is gone (cancelled, completed by another claimer) does nothing.
   */
  complete(done: readonly CompletedDelivery[]): Promise<void>;

  /** When the next entry can be claimed (its due time or lease end), or undefined when none waits. */
  nextDueAt(): Promise<number | undefined>;

  /** Pending entries in all, as far as this node knows cheaply (exact on memory and SQLite). */
  pending(): Promise<number>;

  /** Releases timers and connections; calls after close reject. Whoever built the store closes it. */
  close(): Promise<void>;
}

/** The original a key record points at, from an entry. */
export function originalOf(entry: ScheduledEntry): ScheduledOriginal {
  return { id: entry.id, mailbox: entry.mailbox, dueAtMs: entry.dueAtMs };
}
