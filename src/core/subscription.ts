import type { MailboxStore, StoredMessage, StreamPosition } from "../store/mailbox-store.js";
import { getOrCreate } from "../util/get-or-create.js";
import { waitForConsumer } from "./consumer-wait.js";
import type { StreamSink } from "./delivery.js";
import { type DeliveryView, passes } from "./message-filter.js";
import { cursorOf, type PositionMap, type ReadEvent, readAfter } from "./read-plan.js";
import {
  filteredFrames,
  framedSize,
  MOVED_FRAME_INTERVAL_MS,
  noteWritten,
  type RoundFrames,
  reportWritten,
  type WriteTracker,
  type WrittenSpan,
} from "./round-frames.js";

export type { RoundFrames } from "./round-frames.js";

export interface SubscriptionContext {
  readonly store: MailboxStore;
  /** Messages read from the store per replay step. */
  readonly replayPageSize: number;
  /** Bytes queued for one connection beyond which a live subscriber is cut. */
  readonly maxQueueBytes: number;
  /**
   * Bytes queued beyond which a `mode=latest` subscriber stops taking live
   * messages and catches up from the store, conflated, once its queue drained.
   */
  readonly latestQueueBytes: number;
  /** How long a consumer with bytes waiting may read nothing, during a paced catch-up, before it is cut. */
  readonly sendTimeoutMs: number;
  /** How long to wait before retrying a replay the store failed. */
  readonly retryDelayMs: number;
  readonly onDelivered: (count: number) => void;
  readonly onGap: (count: number) => void;
  readonly onSlowConsumer: () => void;
  readonly onClosed: (subscription: Subscription) => void;
}

function isNext(position: StreamPosition, message: StoredMessage): boolean {
  if (message.epoch === position.epoch) return message.seq === position.seq + 1;
  // A client that holds nothing of an epoch it cannot name still gets seq 1 of the new one.
  return position.seq === 0 && message.seq === 1;
}

function isRepeat(position: StreamPosition, message: StoredMessage): boolean {
  return message.epoch === position.epoch && message.seq <= position.seq;
}

/** What a subscription carries beyond messages (see reader-session.ts); started and closed with it. */
export interface SubscriptionExtras extends WriteTracker {
  /** False when `written` would do nothing: the fan-out path then skips the call. */
  readonly tracksWrites: boolean;
  start(): void;
  close(): void;
}

/**
 * One live subscriber. It registers with the hub before its first replay, so
 * a message published while it replays is read by the replay loop (which runs
 * again when told it is dirty) and dropped by seq when the live path sees it.
 */
export class Subscription {
  readonly mailboxes: readonly string[];
  readonly sink: StreamSink;
  /** Set by the hub's fan-out loop so a subscriber of several mailboxes is visited once a round. */
  round = 0;
  readonly #context: SubscriptionContext;
  readonly #positions: PositionMap;
  readonly #single: string | undefined;
  readonly #view: DeliveryView;
  /** Where this subscriber's frames are cached in a round: subscribers with the same filter share them. */
  readonly #framesKey: string | undefined;
  /** Starts true so the live path defers to the first replay, which start() begins. */
  #pumping = true;
  #dirty = false;
  #closed = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #movedTimer: NodeJS.Timeout | undefined;
  #movedAt = 0;
  readonly #extras: SubscriptionExtras | undefined;
  /** The extras when they follow what is written (unread counts); the hot path checks only this. */
  readonly #tracker: SubscriptionExtras | undefined;

  constructor(
    context: SubscriptionContext,
    mailboxes: readonly string[],
    positions: PositionMap,
    sink: StreamSink,
    extras?: SubscriptionExtras,
    view: DeliveryView = {},
  ) {
    this.#context = context;
    this.mailboxes = mailboxes;
    this.#positions = positions;
    this.#single = mailboxes.length === 1 ? mailboxes[0] : undefined;
    this.#view = view;
    this.#framesKey =
      this.#single === undefined || view.filter === undefined
        ? this.#single
        : `${this.#single}\n${view.filter.signature}`;
    this.sink = sink;
    this.#extras = extras;
    this.#tracker = extras?.tracksWrites ? extras : undefined;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Live path: `messages` are committed, in publish order, of this subscription's mailboxes and possibly others. */
  deliverLive(messages: readonly StoredMessage[], frames: RoundFrames): void {
    if (this.#closed) return;
    if (this.#pumping) {
      this.#dirty = true;
      return;
    }
    if (this.#view.latest && this.sink.bufferedBytes() > this.#context.latestQueueBytes) {
      this.#catchUpWhenDrained();
      return;
    }
    const delivered =
      this.#single === undefined ? this.#deliverMany(messages) : this.#deliverOne(this.#single, messages, frames);
    if (delivered === undefined) {
      void this.pump();
      return;
    }
    if (delivered > 0) this.#context.onDelivered(delivered);
    if (this.sink.bufferedBytes() > this.#context.maxQueueBytes) this.#cutSlowConsumer();
  }

  /** The subscription's cursor now; before start() it is where replay will begin. */
  get cursor(): string {
    return cursorOf(this.mailboxes, this.#positions);
  }

  /** Begins the first replay; the transport calls it once its response head is written. */
  start(): void {
    this.#pumping = false;
    this.#extras?.start();
    void this.pump();
  }

  /** Catches up from the store until nothing is left after this subscriber's positions. */
  async pump(): Promise<void> {
    if (this.#closed) return;
    if (this.#pumping) {
      this.#dirty = true;
      return;
    }
    this.#pumping = true;
    try {
      do {
        this.#dirty = false;
        const outcome = await readAfter(
          this.#context.store,
          this.mailboxes,
          this.#positions,
          this.#context.replayPageSize,
          this.#view,
        );
        if (this.#closed) return;
        if (outcome.events.length > 0) await this.#writeEvents(outcome.events);
        if (outcome.movedSilently) this.#noteMoved();
        if (outcome.more) this.#dirty = true;
      } while (this.#dirty && !this.#closed);
    } catch {
      if (!this.#closed) {
        this.#retryTimer = setTimeout(() => void this.pump(), this.#context.retryDelayMs);
        this.#retryTimer.unref();
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Called when the connection is gone or the hub ends it; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#movedTimer);
    this.#extras?.close();
    this.#context.onClosed(this);
  }

  /**
   * Writes a replayed page in slices, waiting for the consumer whenever half the
   * queue bound is in flight: replay is paced by the client (it asked for
   * history), and a page of large messages never sits in memory at once. A
   * consumer that reads nothing for the send timeout is cut as a slow one.
   */
  async #writeEvents(events: readonly ReadEvent[]): Promise<void> {
    const format = this.sink.format;
    // A latest-mode subscriber is paced at its smaller bound, so it stays behind by less and skips more.
    const queueBytes = this.#view.latest ? this.#context.latestQueueBytes * 2 : this.#context.maxQueueBytes;
    const sliceBytes = queueBytes / 4;
    const { sendTimeoutMs } = this.#context;
    let text = "";
    let messages = 0;
    let gaps = 0;
    const extras = this.#tracker;
    const written = new Map<string, WrittenSpan>();
    const flush = async () => {
      if (text.length > 0) this.sink.write(text);
      text = "";
      if (extras) reportWritten(extras, written);
      if (messages > 0) this.#context.onDelivered(messages);
      if (gaps > 0) this.#context.onGap(gaps);
      messages = 0;
      gaps = 0;
      if (this.sink.bufferedBytes() > queueBytes / 2 && !(await waitForConsumer(this.sink, sendTimeoutMs))) {
        this.#cutSlowConsumer();
      }
    };
    for (const event of events) {
      if (this.#closed) return;
      if (event.type === "gap") {
        text += format.gap(event.gaps, event.cursor);
        gaps += event.gaps.length;
      } else if (event.type === "conflated") {
        text += format.event(
          "conflated",
          `{"type":"conflated","mailbox":${JSON.stringify(event.mailbox)},"skipped":${event.skipped}}`,
        );
      } else {
        text += format.message(event.message, event.cursor);
        messages += 1;
        if (extras) noteWritten(written, event.message);
      }
      if (text.length >= sliceBytes) await flush();
    }
    await flush();
  }

  /** Returns the count written, or undefined when this subscriber must replay instead. */
  #deliverOne(mailbox: string, messages: readonly StoredMessage[], frames: RoundFrames): number | undefined {
    const position = this.#positions.get(mailbox);
    if (!position) return undefined;
    let start = 0;
    while (start < messages.length && isRepeat(position, messages[start] as StoredMessage)) start++;
    if (start === messages.length) return 0;
    let previous: StreamPosition = position;
    for (let i = start; i < messages.length; i++) {
      const message = messages[i] as StoredMessage;
      if (!isNext(previous, message)) return undefined;
      previous = message;
    }
    const format = this.sink.format;
    const byStart = getOrCreate(
      getOrCreate(frames, format, () => new Map()),
      this.#framesKey as string,
      () => [],
    );
    let framed = byStart[start];
    if (framed === undefined) {
      framed = filteredFrames(format, this.#view, messages, start);
      byStart[start] = framed;
    }
    // A latest-mode subscriber is never cut: a round that would pass the bound is read from the store, paced.
    if (this.#view.latest && this.sink.bufferedBytes() + framed.text.length > this.#context.maxQueueBytes) {
      return undefined;
    }
    if (framed.text.length > 0) this.sink.write(framed.text);
    this.#positions.set(mailbox, { epoch: previous.epoch, seq: previous.seq });
    if (framed.movedTail) this.#noteMoved();
    // Unread counts are of the mailbox, so filtered-out messages count too.
    this.#tracker?.written(
      mailbox,
      previous.epoch,
      (messages[start] as StoredMessage).seq,
      previous.seq,
      messages.length - start,
    );
    return framed.count;
  }

  #deliverMany(messages: readonly StoredMessage[]): number | undefined {
    if (
      this.#view.latest &&
      this.sink.bufferedBytes() + framedSize(messages, this.mailboxes.length) > this.#context.maxQueueBytes
    ) {
      return undefined;
    }
    const format = this.sink.format;
    let text = "";
    let count = 0;
    let fellBehind = false;
    let movedSilently = false;
    const written = this.#tracker && new Map<string, WrittenSpan>();
    for (const message of messages) {
      const position = this.#positions.get(message.mailbox);
      if (!position) {
        if (this.mailboxes.includes(message.mailbox)) fellBehind = true;
        continue;
      }
      if (isRepeat(position, message)) continue;
      if (!isNext(position, message)) {
        fellBehind = true;
        break;
      }
      this.#positions.set(message.mailbox, { epoch: message.epoch, seq: message.seq });
      if (written) noteWritten(written, message);
      if (!passes(this.#view.filter, message)) {
        movedSilently = true;
        continue;
      }
      text += format.message(message, cursorOf(this.mailboxes, this.#positions));
      count += 1;
      movedSilently = false;
    }
    if (movedSilently) this.#noteMoved();
    if (text.length > 0) this.sink.write(text);
    if (written && this.#tracker) reportWritten(this.#tracker, written);
    if (fellBehind) {
      if (count > 0) this.#context.onDelivered(count);
      return undefined;
    }
    return count;
  }

  /**
   * A latest-mode subscriber whose queue passed its bound takes no more live
   * messages; once the client has read what was queued, it catches up from
   * the store, where a replay keeps only the newest message of each key. One
   * that reads nothing for the send timeout is cut.
   */
  #catchUpWhenDrained(): void {
    this.#pumping = true;
    void waitForConsumer(this.sink, this.#context.sendTimeoutMs).then((drained) => {
      this.#pumping = false;
      if (drained) void this.pump();
      else this.#cutSlowConsumer();
    });
  }

  /**
   * The positions moved past messages the filter left out: a cursor frame
   * tells the client, at most once per MOVED_FRAME_INTERVAL_MS. Never while a
   * replay is writing, since the positions are then ahead of what was written.
   */
  #noteMoved(): void {
    if (this.#movedTimer !== undefined || this.#closed) return;
    const wait = this.#movedAt + MOVED_FRAME_INTERVAL_MS - Date.now();
    if (wait <= 0 && !this.#pumping) {
      this.#movedAt = Date.now();
      this.sink.write(this.sink.format.moved(this.cursor));
      return;
    }
    this.#movedTimer = setTimeout(
      () => {
        this.#movedTimer = undefined;
        this.#noteMoved();
      },
      Math.max(wait, 50),
    );
    this.#movedTimer.unref();
  }

  #cutSlowConsumer(): void {
    if (this.#closed) return;
    this.#context.onSlowConsumer();
    this.sink.end("slow-consumer");
    this.close();
  }
}
