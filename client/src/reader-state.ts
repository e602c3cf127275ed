import type {
  PresenceAnswer,
  PresenceEvent,
  PresenceMember,
  ReadEvent,
  ReaderEvent,
  ReadState,
  UnreadEvent,
} from "./types.js";

const READER_EVENT_TYPES: ReadonlySet<string> = new Set(["presence", "join", "leave", "read", "unread"]);

/** A parsed frame that is a reader event. Anything else (a newer server's event) is left alone, never an error. */
export function isReaderEvent(frame: unknown): frame is ReaderEvent {
  const { type, mailbox } = (frame ?? {}) as { type?: unknown; mailbox?: unknown };
  return typeof type === "string" && READER_EVENT_TYPES.has(type) && typeof mailbox === "string";
}

export interface ReaderHandlers {
  onPresence?(event: PresenceEvent): void;
  onRead?(event: ReadEvent): void;
  onUnread?(event: UnreadEvent): void;
}

interface PresenceView {
  count: number;
  /** Undefined while the mailbox is over the server's bound and only counts arrive. */
  members: Map<string, PresenceMember> | undefined;
}

/**
 * The reader side of one subscription as its events have built it: who is on
 * each mailbox, the last read position and the unread count. Every tab keeps
 * one, so the tab holding a shared connection can hand a tab that arrives late
 * what it missed (see shared.ts).
 */
export class ReaderState {
  readonly #presence = new Map<string, PresenceView>();
  readonly #unread = new Map<string, number>();
  readonly #readCursors = new Map<string, string>();
  /** Reader events applied per mailbox: an HTTP answer that raced a newer stream event must not overwrite it. */
  readonly #applied = new Map<string, number>();
  /** Unread counts are only kept current by streams opened with `unread`; otherwise none are reported. */
  readonly #trackUnread: boolean;

  constructor(trackUnread: boolean) {
    this.#trackUnread = trackUnread;
  }

  /** Applies a stream event and tells `handlers`: presence events always, read moves and unread counts when they change. */
  apply(event: ReaderEvent, handlers: ReaderHandlers): void {
    this.#applied.set(event.mailbox, this.applied(event.mailbox) + 1);
    if (event.type === "unread") {
      this.#setUnread(event.mailbox, event.unread, handlers);
    } else if (event.type === "read") {
      // The same move can arrive twice: from this tab's markRead answer and from the stream.
      if (this.#readCursors.get(event.mailbox) !== event.cursor) {
        this.#readCursors.set(event.mailbox, event.cursor);
        handlers.onRead?.(event);
      }
      this.#setUnread(event.mailbox, event.unread, handlers);
    } else {
      this.#applyPresence(event);
      handlers.onPresence?.(event);
    }
  }

  /** Applies the answer of a markRead sent when `applied(mailbox)` was `before`, unless a stream event came since. */
  answered(state: ReadState, before: number, handlers: ReaderHandlers): void {
    if (this.applied(state.mailbox) !== before) return;
    this.apply({ type: "read", ...state }, handlers);
  }

  applied(mailbox: string): number {
    return this.#applied.get(mailbox) ?? 0;
  }

  unread(mailbox: string): number | undefined {
    return this.#unread.get(mailbox);
  }

  presence(mailbox: string): PresenceAnswer | undefined {
    const view = this.#presence.get(mailbox);
    if (view === undefined) return undefined;
    const members = view.members && [...view.members.values()];
    return members ? { mailbox, count: view.count, members } : { mailbox, count: view.count };
  }

  /** Events that bring a tab with no state to this one: a presence snapshot and the unread count per mailbox. */
  replay(): ReaderEvent[] {
    const events: ReaderEvent[] = [];
    for (const mailbox of this.#presence.keys()) {
      const answer = this.presence(mailbox);
      if (answer) events.push({ type: "presence", ...answer });
    }
    for (const [mailbox, unread] of this.#unread) events.push({ type: "unread", mailbox, unread });
    return events;
  }

  #setUnread(mailbox: string, unread: number, handlers: ReaderHandlers): void {
    if (!this.#trackUnread || this.#unread.get(mailbox) === unread) return;
    this.#unread.set(mailbox, unread);
    handlers.onUnread?.({ type: "unread", mailbox, unread });
  }

  #applyPresence(event: PresenceEvent): void {
    if (event.type === "presence") {
      const members = event.members && new Map(event.members.map((member) => [member.sub, member]));
      this.#presence.set(event.mailbox, { count: event.count, members });
      return;
    }
    const view = this.#presence.get(event.mailbox) ?? { count: 0, members: new Map() };
    this.#presence.set(event.mailbox, view);
    view.count = event.count;
    if (event.type === "leave") view.members?.delete(event.sub);
    else if (view.members && !view.members.has(event.sub)) {
      // A join says who and since when, not over how many connections: at least one.
      view.members.set(event.sub, {
        sub: event.sub,
        info: event.info,
        connections: 1,
        since: event.since ?? new Date().toISOString(),
      });
    }
  }
}
