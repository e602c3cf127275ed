import type { MailboxStore, StoredMessage } from "../store/mailbox-store.js";
import { getOrCreate } from "../util/get-or-create.js";
import { CURSOR_NOW } from "./cursor.js";
import type { GapNotice } from "./delivery.js";
import type { DrainGate } from "./drain-gate.js";
import type { DeliveryView } from "./message-filter.js";
import {
  cursorOf,
  type PositionMap,
  type ReadEvent,
  type ReadOutcome,
  readAfter,
  resolvePositions,
  storeCall,
} from "./read-plan.js";
import { type ClientGone, createWaiter, type Waiter } from "./waiter.js";

export interface ReadRequest {
  readonly mailboxes: readonly string[];
  /** As the client sent it: undefined (from the earliest), "now", or a cursor. */
  readonly cursor: string | undefined;
  readonly limit: number;
  /** 0 answers at once; otherwise hold until something arrives or this passes. */
  readonly waitMs: number;
  /** A held read stops waiting when its client leaves. */
  readonly client?: ClientGone;
  /** Filters, and `mode=latest` conflation of what the read catches up on. */
  readonly view?: DeliveryView;
}

/** Messages a `mode=latest` read left out of one mailbox because a newer one of their key followed. */
export interface ConflatedNotice {
  readonly mailbox: string;
  readonly skipped: number;
}

export interface ReadAnswer {
  readonly messages: { readonly message: StoredMessage; readonly cursor: string }[];
  readonly cursor: string;
  readonly gaps: GapNotice[];
  readonly conflated: ConflatedNotice[];
}

/**
 * Store pages one filtered read scans for a message before it answers with
 * none (and a cursor past what it scanned), so a filter that matches nothing
 * in a long log costs a bounded amount per request.
 */
export const MAX_FILTERED_PAGES = 10;

/**
 * One answer's worth of reading: a page the filter emptied is not the end of
 * the log, so up to MAX_FILTERED_PAGES are read. `moved` when the filter
 * passed over messages (the cursor moved with nothing to show).
 */
async function readPages(
  store: MailboxStore,
  positions: PositionMap,
  request: ReadRequest,
): Promise<ReadOutcome & { moved: boolean }> {
  const { mailboxes, limit, view } = request;
  let outcome = await storeCall(readAfter(store, mailboxes, positions, limit, view));
  let moved = false;
  for (let page = 1; outcome.events.length === 0 && outcome.more && page < MAX_FILTERED_PAGES; page++) {
    moved ||= outcome.movedSilently;
    outcome = await storeCall(readAfter(store, mailboxes, positions, limit, view));
  }
  return { ...outcome, moved: moved || outcome.movedSilently };
}

export interface ReadsOptions {
  readonly store: MailboxStore;
  readonly gate: DrainGate;
  readonly onAnswered: (delivered: number, gaps: number) => void;
}

/**
 * One-shot reads and long-polls. A long-poll registers a waiter on each of its
 * mailboxes before its first read, so an append between that read and the
 * wait still wakes it; drain wakes them all, and they answer with what they have.
 */
export class Reads {
  readonly #options: ReadsOptions;
  readonly #waiters = new Map<string, Set<Waiter>>();

  constructor(options: ReadsOptions) {
    this.#options = options;
  }

  /** Long-polls waiting on the mailbox right now. */
  count(mailbox: string): number {
    return this.#waiters.get(mailbox)?.size ?? 0;
  }

  /** Mailboxes with a long-poll waiting. */
  mailboxes(): IterableIterator<string> {
    return this.#waiters.keys();
  }

  wake(mailbox: string): void {
    const waiters = this.#waiters.get(mailbox);
    if (waiters) for (const waiter of waiters) waiter.wake();
  }

  wakeAll(): void {
    for (const set of this.#waiters.values()) for (const waiter of set) waiter.wake();
  }

  async read(request: ReadRequest): Promise<ReadAnswer> {
    const { mailboxes } = request;
    const { store, gate } = this.#options;
    const positions = await resolvePositions(store, mailboxes, request.cursor);
    const waiter = request.waitMs > 0 && !gate.draining ? this.#addWaiter(mailboxes) : undefined;
    try {
      let outcome = await readPages(store, positions, request);
      let moved = outcome.moved;
      const deadline = Date.now() + request.waitMs;
      // A filter that emptied its whole page budget answers at once with the moved cursor: more may match.
      while (waiter && outcome.events.length === 0 && !outcome.more && !gate.draining && !request.client?.gone) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) break;
        await waiter.next(remaining, request.client);
        outcome = await readPages(store, positions, request);
        moved ||= outcome.moved;
      }
      // Nothing to deliver and nothing filtered out: a client's own cursor comes back as sent ("now" resolves to a real one).
      const echoed =
        outcome.events.length === 0 && !moved && request.cursor !== undefined && request.cursor !== CURSOR_NOW
          ? request.cursor
          : undefined;
      return this.#answer(mailboxes, positions, outcome.events, echoed);
    } finally {
      if (waiter) this.#removeWaiter(mailboxes, waiter);
    }
  }

  #answer(
    mailboxes: readonly string[],
    positions: PositionMap,
    events: readonly ReadEvent[],
    unchangedCursor: string | undefined,
  ): ReadAnswer {
    const messages: ReadAnswer["messages"] = [];
    const gaps: GapNotice[] = [];
    const conflated: ConflatedNotice[] = [];
    for (const event of events) {
      if (event.type === "gap") gaps.push(...event.gaps);
      else if (event.type === "conflated") conflated.push({ mailbox: event.mailbox, skipped: event.skipped });
      else messages.push({ message: event.message, cursor: event.cursor });
    }
    this.#options.onAnswered(messages.length, gaps.length);
    return { messages, gaps, conflated, cursor: unchangedCursor ?? cursorOf(mailboxes, positions) };
  }

  #addWaiter(mailboxes: readonly string[]): Waiter {
    const waiter = createWaiter();
    for (const mailbox of mailboxes) getOrCreate(this.#waiters, mailbox, () => new Set()).add(waiter);
    return waiter;
  }

  #removeWaiter(mailboxes: readonly string[], waiter: Waiter): void {
    for (const mailbox of mailboxes) {
      const set = this.#waiters.get(mailbox);
      if (!set) continue;
      set.delete(waiter);
      if (set.size === 0) this.#waiters.delete(mailbox);
    }
  }
}
