import type { Delivery } from "./delivery.js";
import { HeraldClientError, networkError, responseError } from "./errors.js";
import { mailboxQuery } from "./http.js";
import { conflatedEvent } from "./transport.js";
import type {
  ConflatedEvent,
  GapEvent,
  HeraldMessage,
  ReaderEvent,
  SubscriptionStatus,
  TokenProvider,
} from "./types.js";
import { type StreamView, viewQuery } from "./view.js";

/** Pages a follower tab reads to catch up before it relies on the leader's broadcasts. */
export const MAX_CATCH_UP_PAGES = 20;
const CATCH_UP_PAGE_SIZE = 1000;

type Broadcast =
  | { kind: "message"; message: HeraldMessage }
  | { kind: "gap"; gap: GapEvent }
  | { kind: "cursor"; cursor: string }
  | { kind: "conflated"; event: ConflatedEvent }
  | { kind: "reader"; event: ReaderEvent }
  | { kind: "status"; status: SubscriptionStatus }
  | { kind: "hello" };

/** What the leader tab runs: a connection whose events it hands to `sink`; `stop` ends it. */
export interface LeaderSink {
  message(message: HeraldMessage): void;
  gap(gap: GapEvent): void;
  cursor(cursor: string): void;
  conflated(event: ConflatedEvent): void;
  reader(event: ReaderEvent): void;
  status(status: Omit<SubscriptionStatus, "role">): void;
}

export interface SharedOptions {
  /** Names the lock and the channel: the same server, mailboxes and transport share. */
  readonly name: string;
  readonly baseUrl: string;
  readonly mailboxes: readonly string[];
  /** The subscription's filters and mode: a follower's catch-up reads what the leader's stream sends. */
  readonly view: StreamView;
  readonly token: TokenProvider | undefined;
  readonly fetch: typeof fetch;
  readonly delivery: Delivery;
  /** Starts the real connection from the delivery's cursor; returns its stop function. */
  readonly lead: (sink: LeaderSink) => () => void;
}

export function canShareAcrossTabs(): boolean {
  const nav = (globalThis as { navigator?: { locks?: unknown } }).navigator;
  return typeof BroadcastChannel === "function" && nav?.locks !== undefined;
}

/**
 * One connection per browser, not per tab. The tab holding the Web Lock is
 * the leader: it connects and rebroadcasts every event on a BroadcastChannel.
 * Other tabs catch up once with a short read, then listen; when the leader
 * closes, the browser hands the lock to the next tab, which connects from the
 * cursor of the last event it saw.
 */
export function startShared(options: SharedOptions): () => void {
  const { delivery } = options;
  const channel = new BroadcastChannel(options.name);
  const abort = new AbortController();
  let role: "leader" | "follower" = "follower";
  let lastStatus: SubscriptionStatus | undefined;
  let stopLeading: (() => void) | undefined;
  let releaseLock: (() => void) | undefined;
  let buffered: Broadcast[] | undefined = [];
  let catchingUp: Promise<void> = Promise.resolve();
  let closed = false;

  const apply = (event: Broadcast) => {
    if (event.kind === "message") delivery.message(event.message);
    else if (event.kind === "gap") delivery.gap(event.gap);
    else if (event.kind === "cursor") delivery.moved(event.cursor);
    else if (event.kind === "conflated") delivery.conflated(event.event);
    else if (event.kind === "reader") delivery.reader(event.event);
    else if (event.kind === "status") delivery.status({ ...event.status, role: "follower" });
  };
  const flush = () => {
    const events = buffered ?? [];
    buffered = undefined;
    for (const event of events) apply(event);
  };
  channel.onmessage = (event: MessageEvent<Broadcast>) => {
    const data = event.data;
    if (role === "leader") {
      if (data.kind !== "hello") return;
      if (lastStatus) channel.postMessage({ kind: "status", status: lastStatus });
      // The newcomer missed the presence snapshot and the unread counts sent at open: hand it the current ones.
      for (const event of delivery.readers.replay()) channel.postMessage({ kind: "reader", event });
      return;
    }
    if (buffered) buffered.push(data);
    else apply(data);
  };

  const lead = async (): Promise<void> => {
    if (closed) return;
    await catchingUp;
    flush();
    role = "leader";
    delivery.persist = true;
    stopLeading = options.lead({
      message: (message) => {
        delivery.message(message);
        channel.postMessage({ kind: "message", message });
      },
      gap: (gap) => {
        delivery.gap(gap);
        channel.postMessage({ kind: "gap", gap });
      },
      cursor: (cursor) => {
        delivery.moved(cursor);
        channel.postMessage({ kind: "cursor", cursor });
      },
      conflated: (event) => {
        delivery.conflated(event);
        channel.postMessage({ kind: "conflated", event });
      },
      reader: (event) => {
        delivery.reader(event);
        channel.postMessage({ kind: "reader", event });
      },
      status: (status) => {
        lastStatus = { ...status, role: "leader" };
        delivery.status(lastStatus);
        channel.postMessage({ kind: "status", status: lastStatus });
      },
    });
    await new Promise<void>((resolve) => {
      releaseLock = resolve;
    });
  };

  const follow = () => {
    delivery.persist = false;
    delivery.status({ state: "connecting", transport: "sse", role: "follower" });
    channel.postMessage({ kind: "hello" });
    catchingUp = catchUp(options).then(flush, (error: unknown) => {
      delivery.error(error instanceof HeraldClientError ? error : networkError(error));
      flush();
    });
    navigator.locks.request(options.name, { signal: abort.signal }, lead).catch(() => {
      // Aborted by close() while waiting: nothing to release.
    });
  };

  void navigator.locks.request(options.name, { ifAvailable: true }, (lock) => {
    if (lock) return lead();
    if (closed) return undefined;
    follow();
    return undefined;
  });

  return () => {
    closed = true;
    abort.abort();
    stopLeading?.();
    releaseLock?.();
    channel.close();
  };
}

/** Reads what the follower's cursor is behind by; deliveries are de-duplicated by id. */
async function catchUp(options: SharedOptions): Promise<void> {
  const { delivery } = options;
  for (let page = 0; page < MAX_CATCH_UP_PAGES; page++) {
    const token = await options.token?.();
    const query = mailboxQuery(options.mailboxes, {
      cursor: delivery.cursor,
      limit: String(CATCH_UP_PAGE_SIZE),
      ...viewQuery(options.view),
    });
    let response: Response;
    try {
      response = await options.fetch(`${options.baseUrl}/v1/messages?${query}`, {
        headers: token ? { Authorization: `Bearer ${token}` } : {},
        cache: "no-store",
      });
    } catch (error) {
      throw networkError(error);
    }
    if (!response.ok) throw await responseError(response);
    const answer = (await response.json()) as {
      messages: HeraldMessage[];
      cursor: string;
      gaps?: GapEvent["gaps"];
      conflated?: unknown[];
    };
    if (answer.gaps && answer.gaps.length > 0) {
      delivery.gap({ gaps: answer.gaps, cursor: answer.messages[0]?.cursor ?? answer.cursor });
    }
    for (const item of answer.conflated ?? []) {
      const conflated = conflatedEvent(item);
      if (conflated) delivery.conflated(conflated);
    }
    for (const message of answer.messages) delivery.message(message);
    const sent = delivery.cursor;
    delivery.cursor = answer.cursor;
    // A page is short at the head, but also where a filter or latest mode left messages out (or several
    // mailboxes shared it): only an empty answer that did not move the cursor means there is no more.
    if (answer.messages.length === 0 && answer.cursor === sent) return;
  }
}
