import { MAX_UNREAD_COUNTED, type ReadState } from "../store/mailbox-store.js";
import type { FrameFormat, StreamSink } from "./delivery.js";
import type { Presence } from "./presence.js";
import type { PresenceWatcher } from "./presence-view.js";
import { type ReadStates, type ReadWatcher, readStateFields } from "./read-states.js";
import type { ReaderOptions } from "./reader.js";
import type { SubscriptionExtras } from "./subscription.js";

export interface ReaderSessionDeps {
  readonly presence: Presence;
  readonly reads: ReadStates;
  /** Told about a presence or read-state call the store failed; the stream carries on without it. */
  readonly onError: (error: unknown) => void;
  /** Bytes queued for one connection beyond which it is cut, as for messages. */
  readonly maxQueueBytes: number;
  readonly onSlowConsumer: () => void;
}

interface UnreadCount {
  epoch: string;
  unread: number;
  /** The highest seq `unread` accounts for. */
  countedThrough: number;
  /** The highest seq of `epoch` written to this connection. */
  deliveredThrough: number;
  ready: boolean;
  /** The count last sent, so a recount that changed nothing sends nothing. */
  sent: number | undefined;
  /** Bumped by each read move heard: a store count asked for before it is older and is dropped. */
  generation: number;
}

/** A batch of presence events framed once per format: every watcher of a mailbox is handed the same array. */
const framedBatches = new WeakMap<readonly string[], Map<FrameFormat, string>>();

function framedOnce(events: readonly string[], format: FrameFormat): string {
  let byFormat = framedBatches.get(events);
  if (byFormat === undefined) {
    byFormat = new Map();
    framedBatches.set(events, byFormat);
  }
  let text = byFormat.get(format);
  if (text === undefined) {
    text = "";
    for (const event of events) text += format.event("presence", event);
    byFormat.set(format, text);
  }
  return text;
}

/**
 * What a subscription carries beyond messages: its reader's presence on each
 * mailbox, presence events (`presence=1`), read-state moves of its reader, and
 * unread counts (`unread=1`). Counts start from the store at open and then
 * follow what this connection is sent and the reader's read moves, so a
 * message is never counted twice.
 */
export class ReaderSession implements SubscriptionExtras, PresenceWatcher, ReadWatcher {
  readonly #deps: ReaderSessionDeps;
  readonly #mailboxes: readonly string[];
  readonly #options: ReaderOptions;
  readonly #sink: StreamSink;
  readonly #cleanups: (() => void)[] = [];
  readonly #counts = new Map<string, UnreadCount>();
  readonly tracksWrites: boolean;
  #closed = false;

  constructor(deps: ReaderSessionDeps, mailboxes: readonly string[], options: ReaderOptions, sink: StreamSink) {
    this.#deps = deps;
    this.#mailboxes = mailboxes;
    this.#options = options;
    this.#sink = sink;
    this.tracksWrites = options.unread === true && options.reader !== undefined;
  }

  start(): void {
    if (this.#closed) return;
    const { reader, presence, unread } = this.#options;
    if (reader) {
      this.#cleanups.push(this.#deps.presence.enter(this.#mailboxes, reader));
      for (const mailbox of this.#mailboxes) this.#cleanups.push(this.#deps.reads.watch(mailbox, reader.sub, this));
    }
    if (presence) {
      for (const mailbox of this.#mailboxes) {
        this.#deps.presence.watch(mailbox, this).then((unwatch) => {
          if (this.#closed) unwatch();
          else this.#cleanups.push(unwatch);
        }, this.#deps.onError);
      }
    }
    if (unread && reader) {
      for (const mailbox of this.#mailboxes) {
        this.#counts.set(mailbox, {
          epoch: "",
          unread: 0,
          countedThrough: 0,
          deliveredThrough: 0,
          ready: false,
          sent: undefined,
          generation: 0,
        });
        void this.#recount(mailbox, reader.sub);
      }
    }
  }

  written(mailbox: string, epoch: string, firstSeq: number, lastSeq: number, messages: number): void {
    const count = this.#counts.get(mailbox);
    if (count === undefined) return;
    if (count.epoch !== epoch) {
      count.epoch = epoch;
      count.deliveredThrough = 0;
      // A new epoch (the mailbox was recreated): what the reader read belongs to the old one.
      if (count.ready && this.#options.reader) void this.#recount(mailbox, this.#options.reader.sub);
    }
    count.deliveredThrough = Math.max(count.deliveredThrough, lastSeq);
    if (!count.ready || lastSeq <= count.countedThrough) return;
    // The messages written, not the seqs spanned: trimmed or expired ones in between were never sent.
    const counted = Math.max(0, count.countedThrough - firstSeq + 1);
    count.unread = Math.min(MAX_UNREAD_COUNTED, count.unread + Math.max(0, messages - counted));
    count.countedThrough = lastSeq;
    this.#sendUnread(mailbox, count);
  }

  presence(events: readonly string[]): void {
    if (this.#closed) return;
    this.#write(framedOnce(events, this.#sink.format));
  }

  read(mailbox: string, state: ReadState): void {
    if (this.#closed) return;
    const count = this.#counts.get(mailbox);
    let unread = state.unread;
    if (count && (count.epoch === "" || count.epoch === state.position.epoch)) {
      count.generation += 1;
      this.#adopt(count, state);
      unread = count.unread;
      count.sent = unread;
    }
    this.#write(this.#sink.format.event("read", `{"type":"read",${readStateFields(mailbox, state, unread)}}`));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
  }

  async #recount(mailbox: string, sub: string): Promise<void> {
    const generation = this.#counts.get(mailbox)?.generation;
    let state: ReadState;
    try {
      state = await this.#deps.reads.state(mailbox, sub);
    } catch (error) {
      this.#deps.onError(error);
      return;
    }
    const count = this.#counts.get(mailbox);
    // A read move heard meanwhile is newer than this answer (positions only move forward).
    if (this.#closed || count === undefined || count.generation !== generation) return;
    this.#adopt(count, state);
    this.#sendUnread(mailbox, count);
  }

  /** Takes the store's count, plus what this connection was sent past the point it counted to. */
  #adopt(count: UnreadCount, state: ReadState): void {
    const sameEpoch = count.epoch === "" || count.epoch === state.position.epoch;
    const beyond = sameEpoch ? Math.max(0, count.deliveredThrough - state.lastSeq) : 0;
    count.epoch = state.position.epoch;
    count.unread = Math.min(MAX_UNREAD_COUNTED, state.unread + beyond);
    count.countedThrough = Math.max(state.lastSeq, sameEpoch ? count.deliveredThrough : 0);
    count.ready = true;
  }

  #sendUnread(mailbox: string, count: UnreadCount): void {
    if (this.#closed || count.sent === count.unread) return;
    count.sent = count.unread;
    const json = `{"type":"unread","mailbox":${JSON.stringify(mailbox)},"unread":${count.unread}}`;
    this.#write(this.#sink.format.event("unread", json));
  }

  /**
   * These events are written outside the fan-out rounds, so they get their own
   * check of the queue bound: a connection that stopped reading while joins,
   * leaves and counts kept coming is cut like one that lets messages pile up.
   */
  #write(text: string): void {
    this.#sink.write(text);
    if (this.#sink.bufferedBytes() <= this.#deps.maxQueueBytes) return;
    this.#deps.onSlowConsumer();
    this.#sink.end("slow-consumer");
  }
}
