import { type BackoffOptions, backoffDelay } from "./backoff.js";
import { HeraldClientError, networkError, responseError } from "./errors.js";
import { mailboxQuery } from "./http.js";
import { longPollTransport } from "./long-poll-transport.js";
import { sseTransport } from "./sse-transport.js";
import type { StreamExtras, Transport, TransportHandle } from "./transport.js";
import type {
  ConflatedEvent,
  GapEvent,
  HeraldMessage,
  ReaderEvent,
  SubscriptionStatus,
  TokenProvider,
  TransportName,
  WebSocketConstructor,
} from "./types.js";
import type { StreamView } from "./view.js";
import { wsTransport } from "./ws-transport.js";

/**
 * SSE attempts answered with an HTTP error before any byte arrived, after which "auto" settles on long-poll.
 * Unreachable servers do not count: long-poll would not reach them either.
 */
export const SSE_FAILURES_BEFORE_FALLBACK = 3;

export interface ConnectionOptions {
  readonly baseUrl: string;
  readonly mailboxes: readonly string[];
  /** "auto": SSE, then long-poll if SSE cannot get through. */
  readonly transport: "auto" | TransportName;
  readonly cursor: string | undefined;
  readonly token: TokenProvider | undefined;
  readonly fetch: typeof fetch;
  readonly WebSocket: WebSocketConstructor | undefined;
  /** How long SSE may stay silent after connecting before "auto" falls back to long-poll. */
  readonly sseDeadlineMs: number;
  /** Silence after which a live SSE or WebSocket connection is presumed dead and replaced. */
  readonly stallMs: number;
  readonly longPollWaitSeconds: number;
  readonly extras: StreamExtras;
  readonly view: StreamView;
  readonly backoff: BackoffOptions;
  readonly random: () => number;
}

export interface ConnectionEvents {
  message(message: HeraldMessage): void;
  gap(gap: GapEvent): void;
  /** The cursor moved with no message: a filter left messages out, or a stream said where it starts. */
  cursor(cursor: string): void;
  conflated(event: ConflatedEvent): void;
  reader(event: ReaderEvent): void;
  status(state: SubscriptionStatus["state"], transport: TransportName): void;
  error(error: HeraldClientError): void;
}

const TRANSPORTS: Record<TransportName, Transport> = {
  sse: sseTransport,
  "long-poll": longPollTransport,
  websocket: wsTransport,
};

/**
 * Keeps one subscription connected: reconnects with backoff and jitter,
 * always from the cursor of the last message delivered, and for "auto"
 * moves from SSE to long-poll when SSE cannot get through.
 */
export class Connection {
  readonly #options: ConnectionOptions;
  readonly #events: ConnectionEvents;
  #transport: TransportName;
  #cursor: string | undefined;
  #attempt = 0;
  #silentSseFailures = 0;
  #handle: TransportHandle | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  #stallTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(options: ConnectionOptions, events: ConnectionEvents) {
    this.#options = options;
    this.#events = events;
    this.#transport = options.transport === "auto" ? "sse" : options.transport;
    this.#cursor = options.cursor;
    void this.#connect();
  }

  get transport(): TransportName {
    return this.#transport;
  }

  get cursor(): string | undefined {
    return this.#cursor;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimers();
    clearTimeout(this.#retryTimer);
    this.#handle?.close();
    this.#handle = undefined;
    this.#events.status("closed", this.#transport);
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    this.#events.status("connecting", this.#transport);
    let token: string | undefined;
    try {
      token = await this.#options.token?.();
      // "now" is pinned to a real cursor first, so a reconnect before the first message misses nothing.
      if (this.#cursor === "now") this.#cursor = await this.#pinNow(token);
    } catch (error) {
      this.#retry(error instanceof HeraldClientError ? error : new HeraldClientError(0, "token", String(error)));
      return;
    }
    if (this.#closed) return;
    let alive = false;
    const transport = this.#transport;
    const handle = TRANSPORTS[transport](
      {
        baseUrl: this.#options.baseUrl,
        mailboxes: this.#options.mailboxes,
        cursor: this.#cursor,
        token,
        fetch: this.#options.fetch,
        WebSocket: this.#options.WebSocket,
        longPollWaitSeconds: this.#options.longPollWaitSeconds,
        extras: this.#options.extras,
        view: this.#options.view,
      },
      {
        alive: () => {
          if (handle !== this.#handle) return;
          if (!alive) {
            alive = true;
            this.#attempt = 0;
            this.#silentSseFailures = 0;
            clearTimeout(this.#deadlineTimer);
            this.#events.status("open", transport);
          }
          if (transport !== "long-poll") this.#armStall(handle);
        },
        message: (message) => {
          if (handle !== this.#handle) return;
          this.#cursor = message.cursor;
          this.#events.message(message);
        },
        gap: (gap) => {
          if (handle !== this.#handle) return;
          this.#cursor = gap.cursor;
          this.#events.gap(gap);
        },
        cursor: (cursor) => {
          if (handle !== this.#handle) return;
          this.#cursor = cursor;
          this.#events.cursor(cursor);
        },
        conflated: (event) => {
          if (handle === this.#handle) this.#events.conflated(event);
        },
        reader: (event) => {
          if (handle === this.#handle) this.#events.reader(event);
        },
        closed: (error, fallback) => {
          if (handle !== this.#handle) return;
          this.#handle = undefined;
          this.#clearTimers();
          if (!alive && transport === "sse" && this.#options.transport === "auto" && error?.status !== 0) {
            this.#silentSseFailures += 1;
            if (fallback || this.#silentSseFailures >= SSE_FAILURES_BEFORE_FALLBACK) {
              this.#fallBack();
              return;
            }
          }
          this.#retry(error);
        },
      },
    );
    this.#handle = handle;
    if (transport === "sse" && this.#options.transport === "auto") {
      this.#deadlineTimer = setTimeout(() => {
        if (alive || handle !== this.#handle) return;
        handle.close();
        this.#handle = undefined;
        this.#clearTimers();
        this.#fallBack();
      }, this.#options.sseDeadlineMs);
    }
  }

  async #pinNow(token: string | undefined): Promise<string> {
    const query = mailboxQuery(this.#options.mailboxes, { cursor: "now", limit: "1" });
    let response: Response;
    try {
      response = await this.#options.fetch(`${this.#options.baseUrl}/v1/messages?${query}`, {
        headers: token ? { Authorization: `Bearer ${token}` } : {},
        cache: "no-store",
      });
    } catch (error) {
      throw networkError(error);
    }
    if (!response.ok) throw await responseError(response);
    return ((await response.json()) as { cursor: string }).cursor;
  }

  #fallBack(): void {
    this.#transport = "long-poll";
    this.#events.status("connecting", "long-poll");
    void this.#connect();
  }

  #retry(error: HeraldClientError | undefined): void {
    if (this.#closed) return;
    if (error) {
      this.#events.error(error);
      // The error handler may have closed the subscription (the CLI does for a cursor a person typed).
      if (this.#closed) return;
      if (error.code === "bad_cursor") {
        // The saved cursor is not one this server issued: start over from the earliest retained; ids drop repeats.
        this.#cursor = undefined;
      } else if (error.fatal) {
        this.close();
        return;
      }
    }
    const delay = backoffDelay(this.#attempt++, this.#options.backoff, this.#options.random);
    this.#events.status("connecting", this.#transport);
    this.#retryTimer = setTimeout(() => void this.#connect(), delay);
  }

  #armStall(handle: TransportHandle): void {
    clearTimeout(this.#stallTimer);
    this.#stallTimer = setTimeout(() => {
      if (handle !== this.#handle) return;
      handle.close();
      this.#handle = undefined;
      this.#retry(undefined);
    }, this.#options.stallMs);
  }

  #clearTimers(): void {
    clearTimeout(this.#deadlineTimer);
    clearTimeout(this.#stallTimer);
  }
}
