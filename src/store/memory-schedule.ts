import { getOrCreate } from "../util/get-or-create.js";
import { MinHeap } from "../util/min-heap.js";
import {
  type CancelResult,
  type CompletedDelivery,
  DEFAULT_MAX_DELIVERED_KEYS,
  originalOf,
  type ScheduleAddResult,
  type ScheduleBounds,
  type ScheduledDraft,
  type ScheduledEntry,
  type ScheduledOriginal,
  type ScheduleStore,
} from "./schedule-store.js";
import { storeClosed } from "./store-unavailable.js";

export interface MemoryScheduleOptions {
  /** Idempotency records of delivered entries kept; the oldest delivered are forgotten beyond it. */
  readonly maxDeliveredKeys?: number;
  readonly now?: () => number;
}

interface Pending {
  readonly entry: ScheduledEntry;
  /** Order of adding, so that entries due at the same moment go out in the order they came. */
  readonly order: number;
  /** The due time, or the end of the lease of the claim that holds it. */
  readyAtMs: number;
}

/** A place in the queue; stale once its entry is gone or was claimed again (its readyAtMs moved). */
interface Slot {
  readonly readyAtMs: number;
  readonly order: number;
  readonly id: string;
}

interface KeyRecord {
  readonly original: ScheduledOriginal;
  readonly fingerprint: string | undefined;
  /** Undefined while the entry is pending. */
  readonly expiresAtMs?: number;
}

/** Stale slots tolerated beyond the live ones before the queue is rebuilt. */
const STALE_SLOTS_SLACK = 1024;

const before = (a: Slot, b: Slot) => a.readyAtMs < b.readyAtMs || (a.readyAtMs === b.readyAtMs && a.order < b.order);

function recordKey(mailbox: string, key: string): string {
  return `${mailbox} ${key}`;
}

/**
 * Scheduled publishes in this process only: they are lost with it, like
 * everything the memory store keeps. Due order is a heap of slots; a claim or
 * removal leaves the old slot behind, skipped when it surfaces.
 */
export class MemorySchedule implements ScheduleStore {
  readonly #now: () => number;
  readonly #maxDeliveredKeys: number;
  readonly #entries = new Map<string, Pending>();
  readonly #queue = new MinHeap<Slot>(before);
  readonly #byMailbox = new Map<string, Set<string>>();
  readonly #pendingKeys = new Map<string, KeyRecord>();
  /** In the order they were delivered, so the oldest are forgotten first. */
  readonly #deliveredKeys = new Map<string, KeyRecord>();
  #order = 0;
  #closed = false;

  constructor(options: MemoryScheduleOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#maxDeliveredKeys = options.maxDeliveredKeys ?? DEFAULT_MAX_DELIVERED_KEYS;
  }

  async add(drafts: readonly ScheduledDraft[], bounds: ScheduleBounds): Promise<ScheduleAddResult[]> {
    this.#assertOpen();
    const results: ScheduleAddResult[] = [];
    const adding: ScheduledDraft[] = [];
    const inCall = new Map<string, KeyRecord>();
    const perMailbox = new Map<string, number>();
    for (const draft of drafts) {
      const key = draft.idempotencyKey === undefined ? undefined : recordKey(draft.mailbox, draft.idempotencyKey);
      const record = key === undefined ? undefined : (this.#record(key) ?? inCall.get(key));
      if (record) {
        if (record.fingerprint !== draft.fingerprint) return [{ status: "conflict", entry: record.original }];
        results.push({ status: "duplicate", entry: record.original });
        continue;
      }
      if (key !== undefined) inCall.set(key, { original: originalOf(draft), fingerprint: draft.fingerprint });
      results.push({ status: "scheduled", entry: originalOf(draft) });
      adding.push(draft);
      perMailbox.set(draft.mailbox, (perMailbox.get(draft.mailbox) ?? 0) + 1);
    }
    if (this.#entries.size + adding.length > bounds.maxTotal) return [{ status: "full", mailbox: undefined }];
    for (const [mailbox, count] of perMailbox) {
      if ((this.#byMailbox.get(mailbox)?.size ?? 0) + count > bounds.maxPerMailbox)
        return [{ status: "full", mailbox }];
    }
    for (const draft of adding) {
      const pending: Pending = { entry: draft, order: ++this.#order, readyAtMs: draft.dueAtMs };
      this.#entries.set(draft.id, pending);
      this.#queue.push({ readyAtMs: pending.readyAtMs, order: pending.order, id: draft.id });
      getOrCreate(this.#byMailbox, draft.mailbox, () => new Set()).add(draft.id);
    }
    for (const [key, record] of inCall) this.#pendingKeys.set(key, record);
    return results;
  }

  async list(mailbox: string, limit: number): Promise<ScheduledEntry[]> {
    this.#assertOpen();
    const ids = this.#byMailbox.get(mailbox) ?? new Set<string>();
    return [...ids]
      .map((id) => this.#entries.get(id) as Pending)
      .sort((a, b) => a.entry.dueAtMs - b.entry.dueAtMs || a.order - b.order)
      .slice(0, limit)
      .map((pending) => pending.entry);
  }

  async get(id: string): Promise<ScheduledEntry | undefined> {
    this.#assertOpen();
    return this.#entries.get(id)?.entry;
  }

  async cancel(id: string, nowMs: number): Promise<CancelResult> {
    this.#assertOpen();
    const pending = this.#entries.get(id);
    if (!pending) return "missing";
    // Claimed: a claim moves readyAtMs past the due time, to a lease end.
    if (pending.readyAtMs > pending.entry.dueAtMs && pending.readyAtMs > nowMs) return "delivering";
    this.#remove(pending.entry);
    // A cancelled entry's slot stays in the heap until popped, which may be days away.
    if (this.#queue.size > 2 * this.#entries.size + STALE_SLOTS_SLACK) this.#rebuildQueue();
    return "cancelled";
  }

  async claim(nowMs: number, leaseUntilMs: number, max: number): Promise<ScheduledEntry[]> {
    this.#assertOpen();
    const claimed: ScheduledEntry[] = [];
    while (claimed.length < max) {
      const top = this.#queue.peek();
      if (top === undefined || top.readyAtMs > nowMs) break;
      this.#queue.pop();
      const pending = this.#entries.get(top.id);
      if (pending === undefined || pending.readyAtMs !== top.readyAtMs) continue;
      pending.readyAtMs = leaseUntilMs;
      this.#queue.push({ readyAtMs: leaseUntilMs, order: pending.order, id: top.id });
      claimed.push(pending.entry);
    }
    return claimed;
  }

  async complete(done: readonly CompletedDelivery[]): Promise<void> {
    this.#assertOpen();
    for (const { entry, expiresAtMs } of done) {
      if (this.#entries.get(entry.id) === undefined) continue;
      this.#remove(entry);
      if (entry.idempotencyKey === undefined || expiresAtMs === undefined) continue;
      const key = recordKey(entry.mailbox, entry.idempotencyKey);
      this.#deliveredKeys.delete(key);
      this.#deliveredKeys.set(key, { original: originalOf(entry), fingerprint: entry.fingerprint, expiresAtMs });
      for (const oldest of this.#deliveredKeys.keys()) {
        if (this.#deliveredKeys.size <= this.#maxDeliveredKeys) break;
        this.#deliveredKeys.delete(oldest);
      }
    }
    if (this.#queue.size > 2 * this.#entries.size + STALE_SLOTS_SLACK) this.#rebuildQueue();
  }

  async nextDueAt(): Promise<number | undefined> {
    this.#assertOpen();
    for (;;) {
      const top = this.#queue.peek();
      if (top === undefined) return undefined;
      if (this.#entries.get(top.id)?.readyAtMs === top.readyAtMs) return top.readyAtMs;
      this.#queue.pop();
    }
  }

  async pending(): Promise<number> {
    return this.#entries.size;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #assertOpen(): void {
    if (this.#closed) throw storeClosed();
  }

  #record(key: string): KeyRecord | undefined {
    const pending = this.#pendingKeys.get(key);
    if (pending) return pending;
    const delivered = this.#deliveredKeys.get(key);
    if (delivered?.expiresAtMs === undefined || delivered.expiresAtMs > this.#now()) return delivered;
    this.#deliveredKeys.delete(key);
    return undefined;
  }

  /** Takes an entry out of the queue's books and frees its key; its slot goes stale. */
  #remove(entry: ScheduledEntry): void {
    this.#entries.delete(entry.id);
    const ids = this.#byMailbox.get(entry.mailbox);
    ids?.delete(entry.id);
    if (ids?.size === 0) this.#byMailbox.delete(entry.mailbox);
    if (entry.idempotencyKey === undefined) return;
    const key = recordKey(entry.mailbox, entry.idempotencyKey);
    if (this.#pendingKeys.get(key)?.original.id === entry.id) this.#pendingKeys.delete(key);
  }

  #rebuildQueue(): void {
    this.#queue.drain();
    for (const [id, pending] of this.#entries)
      this.#queue.push({ readyAtMs: pending.readyAtMs, order: pending.order, id });
  }
}

export function createMemorySchedule(options: MemoryScheduleOptions = {}): MemorySchedule {
  return new MemorySchedule(options);
}
