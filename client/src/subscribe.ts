import { type BackoffOptions, DEFAULT_BACKOFF } from "./backoff.js";
import { Connection } from "./connection.js";
import { type CursorStore, localStorageCursorStore } from "./cursor-store.js";
import { Delivery, type SubscribeHandlers } from "./delivery.js";
import { resolveBaseUrl } from "./http.js";
import { canShareAcrossTabs, startShared } from "./shared.js";
import type { SubscriptionStatus, TokenProvider, TransportName, WebSocketConstructor } from "./types.js";

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
  /** The cursor after the last message or gap this tab has seen. */
  readonly cursor: string | undefined;
  readonly status: SubscriptionStatus;
  close(): void;
}

export const DEFAULT_SSE_DEADLINE_MS = 8000;
export const DEFAULT_STALL_MS = 45_000;
export const DEFAULT_LONG_POLL_WAIT_SECONDS = 25;

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
  const key = `${baseUrl}|${[...names].sort().join(",")}`;
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
  );
  const connect = (onEvent: {
    message: Delivery["message"];
    gap: Delivery["gap"];
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
        backoff: options.backoff ?? DEFAULT_BACKOFF,
        random: options.random ?? Math.random,
      },
      {
        message: onEvent.message,
        gap: onEvent.gap,
        status: (state, current) => onEvent.status({ state, transport: current }),
        error: (error) => delivery.error(error),
      },
    );

  let stop: (() => void) | undefined;
  let closed = false;
  const share = options.shareAcrossTabs ?? canShareAcrossTabs();
  void delivery.load(options.cursor).then(
    () => {
      if (closed) return;
      if (share) {
        stop = startShared({
          name: `herald:${transport}:${key}`,
          baseUrl,
          mailboxes: names,
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
          status: (s) => delivery.status({ ...s, role: "solo" }),
        });
        stop = () => connection.close();
      }
    },
    (error: unknown) => handlers.onError?.(error as never),
  );

  return {
    get cursor() {
      return delivery.cursor;
    },
    get status() {
      return status;
    },
    close() {
      closed = true;
      stop?.();
      if (status.state !== "closed") delivery.status({ ...status, state: "closed" });
    },
  };
}
