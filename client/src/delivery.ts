import type { CursorStore } from "./cursor-store.js";
import type { HeraldClientError } from "./errors.js";
import { ReaderState } from "./reader-state.js";
import { SeenIds } from "./seen-ids.js";
import type {
  ConflatedEvent,
  GapEvent,
  HeraldMessage,
  PresenceEvent,
  ReadEvent,
  ReaderEvent,
  ReadState,
  SubscriptionStatus,
  UnreadEvent,
} from "./types.js";

export interface SubscribeHandlers {
  /** Each message once (repeats after a reconnect are dropped by id), in order per mailbox. */
  onMessage(message: HeraldMessage): void;
  /** The server could not deliver everything after the cursor; what follows starts at its earliest message. */
  onGap?(gap: GapEvent): void;
  /**
   * With `mode: "latest"`: the subscription fell behind, or resumed from an old cursor, and the server left
   * out `skipped` older messages of keys that have a newer one; the newest of each follows (or came with it).
   */
  onConflated?(event: ConflatedEvent): void;
  onStatus?(status: SubscriptionStatus): void;
  /**
   * A failed attempt; the subscription retries unless the error is fatal (then status turns "closed").
   * Exception: `bad_cursor` (a saved or given cursor this server did not issue) is reported here and the
   * subscription then starts over from the earliest retained message; close it here to refuse that.
   */
  onError?(error: HeraldClientError): void;
  /**
   * With `presence: true`: a `presence` snapshot at open (replace what you show), then `join` and `leave`,
   * once per reader however many tabs and devices it has (counts only, throttled, for large audiences).
   */
  onPresence?(event: PresenceEvent): void;
  /** This subscription's reader moved its read position in a mailbox: here, in another tab, or on another device. */
  onRead?(event: ReadEvent): void;
  /** With `unread: true`: the unread count of a mailbox, at open and whenever it changes (messages, read moves). */
  onUnread?(event: UnreadEvent): void;
}

/** The per-tab end of a subscription: drops repeats, tracks and saves the cursor, calls the handlers. */
export class Delivery {
  cursor: string | undefined;
  readonly readers: ReaderState;
  /** Only the tab that holds the connection writes the shared cursor. */
  persist = true;
  readonly #handlers: SubscribeHandlers;
  readonly #store: CursorStore | undefined;
  readonly #key: string;
  readonly #seen = new SeenIds();

  constructor(handlers: SubscribeHandlers, store: CursorStore | undefined, key: string, trackUnread: boolean) {
    this.readers = new ReaderState(trackUnread);
    this.#handlers = handlers;
    this.#store = store;
    this.#key = key;
  }

  async load(fallback: string | undefined): Promise<string | undefined> {
    this.cursor = (await this.#store?.load(this.#key)) ?? fallback;
    return this.cursor;
  }

  message(message: HeraldMessage): void {
    this.#advance(message.cursor);
    if (this.#seen.add(message.id)) this.#handlers.onMessage(message);
  }

  gap(gap: GapEvent): void {
    this.#advance(gap.cursor);
    this.#handlers.onGap?.(gap);
  }

  /** The server moved the cursor past messages a filter left out: saved, but no handler hears of it. */
  moved(cursor: string): void {
    this.#advance(cursor);
  }

  conflated(event: ConflatedEvent): void {
    this.#handlers.onConflated?.(event);
  }

  reader(event: ReaderEvent): void {
    this.readers.apply(event, this.#handlers);
  }

  /** A markRead answer, sent after `before` reader events of its mailbox (see ReaderState.answered). */
  readAnswer(state: ReadState, before: number): void {
    this.readers.answered(state, before, this.#handlers);
  }

  status(status: SubscriptionStatus): void {
    this.#handlers.onStatus?.(status);
  }

  error(error: HeraldClientError): void {
    this.#handlers.onError?.(error);
  }

  #advance(cursor: string): void {
    this.cursor = cursor;
    if (this.persist) void this.#store?.save(this.#key, cursor);
  }
}
