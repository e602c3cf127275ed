import { type BackoffOptions, DEFAULT_BACKOFF } from "./backoff.js";
import { Connection } from "./connection.js";
import { type CursorStore, localStorageCursorStore } from "./cursor-store.js";
import { Delivery, type SubscribeHandlers } from "./delivery.js";
import { resolveBaseUrl } from "./http.js";
import { registerLiveMailboxes } from "./push-visible.js";
import { getPresence, getReadStates, putReadMark, type ReaderEndpoint } from "./reader-api.js";
import { canShareAcrossTabs, startShared } from "./shared.js";
import type { StreamExtras } from "./transport.js";
import type {
  HeraldMessage,
  PresenceAnswer,
  ReadState,
  SubscriptionStatus,
  TokenProvider,
  TransportName,
  WebSocketConstructor,
} from "./types.js";
import { type SubscribeFilter, streamView, viewName } from "./view.js";

export interface SubscribeOptions {
  /** Herald's base URL; defaults to the page's origin. */
  url?: string;
  /** "auto" (default): SSE, falling back to long-poll when SSE cannot get through. */
  transport?: "auto" | TransportName;
  /** Where to start when no cursor is saved: a cursor, "now" for only new messages, or undefined for all retained. */
  cursor?: string;
  /** Where the cursor is kept between runs; localStorage by default in a browser, nothing in Node. null disables. */
  cursorStore?: CursorStore | null;
  token?: TokenProvider;
  /**
   * Only messages with any of `tags`, of at least `priority`, with one of `key`s: the server skips the rest
   * (they are not gaps) and moves the cursor past them, so a resumed subscription neither re-reads nor
   * misses anything. The saved cursor is kept apart for each filter and mode.
   */
  filter?: SubscribeFilter;
  /**
   * "latest": when the subscription falls behind (a slow network, a sleeping tab) or resumes from an old
   * cursor, the server sends only the newest message of each `key` among those missed (messages without a
   * key are never skipped) and says so (`onConflated`), instead of the whole backlog. For dashboards:
   * start from a `latest()` snapshot's cursor. Default "all".
   */
  mode?: "all" | "latest";
  /**
   * Who reads, where reads need no token (with a token the reader is its `sub`; a different name is refused):
   * makes this subscription present on its mailboxes and gives it read state. Unauthenticated: anyone may
   * claim a name, so a server with auth on lists it as `anonymous:<name>`, apart from token holders. Sent on
   * every transport, including each long-poll.
   */
  reader?: string;
  /** Presence events (`onPresence`): a snapshot at open, then joins and leaves. Long-poll asks after each poll. */
  presence?: boolean;
  /**
   * Unread counts (`onUnread`, `unread()`), at open and as they change; needs a reader (a token or `reader`).
   * Long-poll asks GET /v1/read after each poll, so there a move made elsewhere shows by the next poll's answer.
   */
  unread?: boolean;
  /** Share one connection among this origin's tabs (default where BroadcastChannel and Web Locks exist). */
  shareAcrossTabs?: boolean;
  fetch?: typeof fetch;
  /** Node 20 has no global WebSocket: pass `ws`'s. */
  WebSocket?: WebSocketConstructor;
  /** Silence after connecting before "auto" gives up on SSE (default 8 s). */
  sseDeadlineMs?: number;
  /** Silence after which a live stream is replaced (default 45 s: three server heartbeats). */
  stallMs?: number;
  /** Seconds each long-poll asks the server to hold (default 25). */
  longPollWaitSeconds?: number;
  backoff?: BackoffOptions;
  /** For tests: the jitter source. */
  random?: () => number;
}

export interface Subscription {
  /** The cursor after the last message, gap or filtered-out message this tab has heard of. */
  readonly cursor: string | undefined;
  readonly status: SubscriptionStatus;
  /**
   * The latest unread count the subscription heard (needs `unread: true`): of `mailbox`, or without one the
   * sum over its mailboxes. Undefined until the server has said.
   */
  unread(mailbox?: string): number | undefined;
  /**
   * Who is on `mailbox` (default: the first subscribed) as the presence events have built it; needs
   * `presence: true`, undefined before the snapshot. `members` is absent when the server sends only counts;
   * members seen joining carry `since` as seen here.
   */
  present(mailbox?: string): PresenceAnswer | undefined;
  /** Asks the server who is on `mailbox` (default: the first subscribed), with this subscription's token. */
  presence(mailbox?: string): Promise<PresenceAnswer>;
  /**
   * Moves the reader's read position forward to a message (or to `cursor` in `mailbox`); the server answers
   * the state after it, and every connection of the reader hears it (`onRead`, this one included). An older
   * position changes nothing. Throws HeraldClientError.
   */
  markRead(message: Pick<HeraldMessage, "mailbox" | "cursor">): Promise<ReadState>;
  markRead(mailbox: string, cursor: string): Promise<ReadState>;
  /** The reader's read position and unread count in `mailbox` (default: the first subscribed), from the server. */
  readState(mailbox?: string): Promise<ReadState>;
  close(): void;
}

export const DEFAULT_SSE_DEADLINE_MS = 8000;
export const DEFAULT_STALL_MS = 45_000;
export const DEFAULT_LONG_POLL_WAIT_SECONDS = 25;

function shareName(extras: StreamExtras): string {
  const flags = `${extras.presence ? "p" : ""}${extras.unread ? "u" : ""}`;
  return extras.reader === undefined && flags === "" ? "" : `${extras.reader ?? ""}:${flags}:`;
}

function defaultCursorStore(): CursorStore | undefined {
  return typeof globalThis.localStorage === "object" ? localStorageCursorStore() : undefined;
}

/** Subscribes to `mailboxes` and keeps the subscription alive until `close()`. */
export function subscribe(
  mailboxes: readonly string[],
  handlers: SubscribeHandlers,
  options: SubscribeOptions = {},
): Subscription {
  if (mailboxes.length === 0) throw new Error("herald subscribe: name at least one mailbox");
  const baseUrl = resolveBaseUrl(options.url);
  const transport = options.transport ?? "auto";
  const names = [...new Set(mailboxes)];
  const view = streamView(options.filter, options.mode);
  // A filtered or latest-mode cursor moved past messages this view left out: no other view may resume from it
  // (nor share a connection, whose name holds the key).
  const key = `${baseUrl}|${[...names].sort().join(",")}${viewName(view)}`;
  const extras: StreamExtras = { reader: options.reader, presence: options.presence, unread: options.unread };
  const store = options.cursorStore === null ? undefined : (options.cursorStore ?? defaultCursorStore());
  const fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
  let status: SubscriptionStatus = {
    state: "connecting",
    transport: transport === "auto" ? "sse" : transport,
    role: "solo",
  };
  const delivery = new Delivery(
    {
      ...handlers,
      onStatus: (next) => {
        status = next;
        handlers.onStatus?.(next);
      },
    },
    store,
    key,
    options.unread === true,
  );
  const connect = (onEvent: {
    message: Delivery["message"];
    gap: Delivery["gap"];
    cursor: Delivery["moved"];
    conflated: Delivery["conflated"];
    reader: Delivery["reader"];
    status: (s: Omit<SubscriptionStatus, "role">) => void;
  }) =>
    new Connection(
      {
        baseUrl,
        mailboxes: names,
        transport,
        cursor: delivery.cursor,
        token: options.token,
        fetch: fetcher,
        WebSocket: options.WebSocket,
        sseDeadlineMs: options.sseDeadlineMs ?? DEFAULT_SSE_DEADLINE_MS,
        stallMs: options.stallMs ?? DEFAULT_STALL_MS,
        longPollWaitSeconds: options.longPollWaitSeconds ?? DEFAULT_LONG_POLL_WAIT_SECONDS,
        extras,
        view,
        backoff: options.backoff ?? DEFAULT_BACKOFF,
        random: options.random ?? Math.random,
      },
      {
        message: onEvent.message,
        gap: onEvent.gap,
        cursor: onEvent.cursor,
        conflated: onEvent.conflated,
        reader: onEvent.reader,
        status: (state, current) => onEvent.status({ state, transport: current }),
        error: (error) => delivery.error(error),
      },
    );

  let stop: (() => void) | undefined;
  let closed = false;
  // Herald's service worker skips the notification of a message this page shows live (see push-visible.ts).
  const unregisterLive = registerLiveMailboxes(names, () => !closed && status.state === "open");
  const share = options.shareAcrossTabs ?? canShareAcrossTabs();
  void delivery.load(options.cursor).then(
    () => {
      if (closed) return;
      if (share) {
        stop = startShared({
          // Tabs share only with tabs that are the same reader and ask for the same events.
          name: `herald:${transport}:${shareName(extras)}${key}`,
          baseUrl,
          mailboxes: names,
          view,
          token: options.token,
          fetch: fetcher,
          delivery,
          lead: (sink) => {
            const connection = connect(sink);
            return () => connection.close();
          },
        });
      } else {
        const connection = connect({
          message: (message) => delivery.message(message),
          gap: (gap) => delivery.gap(gap),
          cursor: (cursor) => delivery.moved(cursor),
          conflated: (event) => delivery.conflated(event),
          reader: (event) => delivery.reader(event),
          status: (s) => delivery.status({ ...s, role: "solo" }),
        });
        stop = () => connection.close();
      }
    },
    (error: unknown) => handlers.onError?.(error as never),
  );

  const endpoint: ReaderEndpoint = { baseUrl, token: options.token, reader: options.reader, fetch: fetcher };
  const mailboxOf = (mailbox: string | undefined) => mailbox ?? (names[0] as string);
  return {
    get cursor() {
      return delivery.cursor;
    },
    get status() {
      return status;
    },
    unread(mailbox) {
      if (mailbox !== undefined) return delivery.readers.unread(mailbox);
      const known = names.map((name) => delivery.readers.unread(name)).filter((n) => n !== undefined);
      return known.length === 0 ? undefined : known.reduce((sum, n) => sum + n, 0);
    },
    present: (mailbox) => delivery.readers.presence(mailboxOf(mailbox)),
    presence: (mailbox) => getPresence(endpoint, mailboxOf(mailbox)),
    async markRead(target: string | Pick<HeraldMessage, "mailbox" | "cursor">, cursor?: string) {
      const mailbox = typeof target === "string" ? target : target.mailbox;
      const position = typeof target === "string" ? cursor : target.cursor;
      if (position === undefined) throw new TypeError("herald markRead: pass a message, or a mailbox and a cursor");
      const before = delivery.readers.applied(mailbox);
      const state = await putReadMark(endpoint, mailbox, position);
      // Long-poll hears no read event of its own move until it asks again; the answer says it now.
      delivery.readAnswer(state, before);
      return state;
    },
    async readState(mailbox) {
      const [state] = await getReadStates(endpoint, [mailboxOf(mailbox)]);
      return state as ReadState;
    },
    close() {
      closed = true;
      unregisterLive();
      stop?.();
      if (status.state !== "closed") delivery.status({ ...status, state: "closed" });
    },
  };
}
