import { HeraldError } from "../errors.js";
import type { AppendResult, MailboxStore, StoredMessage } from "../store/mailbox-store.js";
import type { ScheduledEntry } from "../store/schedule-store.js";
import { encodeSingleCursor } from "./cursor.js";
import type { DrainGate } from "./drain-gate.js";
import { assertMailboxName } from "./mailbox-name.js";
import { createDraft, type MessageFields } from "./message-input.js";
import type { ScheduleSpec } from "./schedule-input.js";
import type { Scheduled, ScheduledMessages } from "./scheduled-messages.js";

/** Items one publish may carry (a batch, or one message to several mailboxes). */
export const MAX_BATCH_ITEMS = 100;
export const MAX_IDEMPOTENCY_KEY_LENGTH = 256;
const CLIENT_IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,256}$/;

/**
 * Whoever publishes, as the publish command sees them: an API key or token
 * holder, a webhook sender, the server itself. Transports build one from
 * their own notion of a caller.
 */
export interface Publisher {
  /** For logs and errors. */
  readonly name: string;
  /** Throws `forbidden` (or `unauthorized`) naming the first mailbox this publisher may not publish to. */
  authorize(mailboxes: readonly string[]): void;
  /** Takes one publish from the publisher's rate budget; throws `too_many_requests` with Retry-After when it is spent. */
  charge(): void;
}

export interface PublishItem {
  readonly mailbox: string;
  readonly fields: MessageFields;
}

export interface Published {
  readonly message: StoredMessage;
  /** True when the idempotency key matched a retained message and nothing was stored. */
  readonly duplicate: boolean;
  /** The single-mailbox cursor just after this message. */
  readonly cursor: string;
}

/** Stores the items of an admitted publish (all, or none on an idempotency conflict). */
export type StoreItems = (items: readonly PublishItem[], idempotencyKey?: string) => Promise<Published[]>;

/** A message to deliver later: at `when` (a delay or a time, checked against the schedule's bounds). */
export interface ScheduledPublishItem extends PublishItem {
  readonly when: ScheduleSpec;
}

/** Schedules the items of an admitted publish (all, or none): the scheduled-delivery sibling of StoreItems. */
export type ScheduleItems = (items: readonly ScheduledPublishItem[], idempotencyKey?: string) => Promise<Scheduled[]>;

/** The idempotency key a due message is appended under: it has a space, so no client can send it. */
export function scheduledMessageKey(id: string): string {
  return `scheduled ${id}`;
}

/**
 * The one way anything is published: POST, the WebSocket `publish` frame,
 * webhook ingest and the server's own feeds all come through here, so a
 * publish gets the same answers whatever carried it.
 *
 * Order: refused with 503 `draining` once a drain began; the mailboxes known
 * on arrival (a path's) are authorized before anything is read; then, once the
 * items are known, every mailbox is authorized, the publisher's rate charged
 * (a refused or malformed publish costs nothing) and the items appended. Once
 * admitted, a publish completes even if a drain begins while its body is still
 * arriving, and the drain waits for it.
 */
export interface PublishCommand {
  /** Admits a publish on arrival; `work` reads the request and calls `store` (or `schedule`) with its items. */
  admit<T>(
    publisher: Publisher,
    knownMailboxes: readonly string[],
    work: (store: StoreItems, schedule: ScheduleItems) => Promise<T>,
  ): Promise<T>;
  /** Admits and stores at once, for items already in hand. */
  publish(publisher: Publisher, items: readonly PublishItem[], idempotencyKey?: string): Promise<Published[]>;
  /** Admits and schedules at once, for items already in hand. */
  schedule(publisher: Publisher, items: readonly ScheduledPublishItem[], idempotencyKey?: string): Promise<Scheduled[]>;
  /**
   * Appends scheduled messages that fell due, as fresh publishes (time and
   * expiry from now, seqs then), each under its publisher's idempotency key or
   * scheduledMessageKey(id), so a second append of one is a duplicate. Nobody
   * is authorized or charged (that happened when it was scheduled); a drain
   * waits for it. Results in entry order, as MailboxStore.append answers.
   */
  deliverDue(entries: readonly ScheduledEntry[]): Promise<AppendResult[]>;
}

export interface PublishCommandOptions {
  readonly store: MailboxStore;
  readonly gate: DrainGate;
  /** Retention of a message whose publisher gave no ttl. */
  readonly defaultTtlSeconds: number;
  /** Counts stored messages (not duplicates). */
  readonly onStored: (count: number) => void;
  /**
   * Told of every message a publish (or a scheduled delivery) stored on this
   * node, duplicates left out: work that must happen once per message across
   * all nodes (Web Push) hangs here, not on the store's append listeners,
   * which fire on every node.
   */
  readonly onPublished?: (messages: readonly StoredMessage[]) => void;
  /** Where scheduled publishes go; without it a publish asking for `delay` or `at` is refused. */
  readonly scheduled?: ScheduledMessages;
}

/** A publisher's `Idempotency-Key`: 1-256 visible ASCII characters, so it can never name a key the server derives. */
export function clientIdempotencyKey(value: unknown, where: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string" && CLIENT_IDEMPOTENCY_KEY.test(value)) return value;
  throw new HeraldError("bad_parameter", `${where} must be 1-${MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters`);
}

function storeUnavailable(): HeraldError {
  return new HeraldError("store_unavailable", undefined, { "Retry-After": "1" });
}

export function createPublishCommand(options: PublishCommandOptions): PublishCommand {
  const { store, gate } = options;
  let lastPublishTime = 0;

  /**
   * Wall-clock time, strictly increasing across publishes: replay merges several
   * mailboxes by time, and two messages stored in the same millisecond must keep
   * the order the server saw them in. 1/1024 ms steps are exact in a double.
   */
  const publishTime = (): number => {
    const now = Date.now();
    lastPublishTime = now > lastPublishTime ? now : lastPublishTime + 1 / 1024;
    return lastPublishTime;
  };

  /** Checks, authorizes and charges one publish's items, as storing and scheduling both do. */
  const accept = (publisher: Publisher, items: readonly PublishItem[]): void => {
    if (items.length === 0 || items.length > MAX_BATCH_ITEMS) {
      throw new HeraldError("bad_message", `A publish carries 1 to ${MAX_BATCH_ITEMS} messages, got ${items.length}`);
    }
    const mailboxes = items.map((item) => assertMailboxName(item.mailbox));
    publisher.authorize(mailboxes);
    publisher.charge();
    if (!store.ready()) throw storeUnavailable();
  };

  /** With several items the key is made per item. */
  const itemKey = (idempotencyKey: string | undefined, count: number, index: number) =>
    idempotencyKey === undefined || count === 1 ? idempotencyKey : `${idempotencyKey}#${index}`;

  /** Appends; held even without an admission (a drain that began after it): the append must finish first. */
  const append = async (items: Parameters<MailboxStore["append"]>[0]): Promise<AppendResult[]> => {
    const release = gate.hold();
    try {
      return await store.append(items);
    } catch (error) {
      throw error instanceof HeraldError ? error : storeUnavailable();
    } finally {
      release();
    }
  };

  const announce = (results: readonly AppendResult[]): void => {
    const stored = results.filter((result) => result.status === "stored").map((result) => result.message);
    options.onStored(stored.length);
    if (stored.length > 0) options.onPublished?.(stored);
  };

  const scheduleFor =
    (publisher: Publisher): ScheduleItems =>
    async (items, idempotencyKey) => {
      accept(publisher, items);
      const { scheduled } = options;
      if (scheduled === undefined) throw new HeraldError("bad_message", "This server does not schedule messages");
      return scheduled.add(
        items.map((item, index) => {
          const key = itemKey(idempotencyKey, items.length, index);
          return { ...item, ...(key === undefined ? {} : { idempotencyKey: key }) };
        }),
      );
    };

  const storeFor =
    (publisher: Publisher): StoreItems =>
    async (items, idempotencyKey) => {
      accept(publisher, items);
      const drafts = items.map((item, index) => ({
        mailbox: item.mailbox,
        draft: createDraft(
          item.fields,
          options.defaultTtlSeconds,
          itemKey(idempotencyKey, items.length, index),
          publishTime(),
        ),
      }));
      const results = await append(drafts);
      if (results.some((result) => result.status === "conflict")) throw new HeraldError("idempotency_conflict");
      announce(results);
      return results.map(({ message, status }) => ({
        message,
        duplicate: status === "duplicate",
        cursor: encodeSingleCursor(message.mailbox, message.epoch, message.seq),
      }));
    };

  const admit: PublishCommand["admit"] = async (publisher, knownMailboxes, work) => {
    const release = gate.admit();
    try {
      if (knownMailboxes.length > 0) publisher.authorize(knownMailboxes);
      return await work(storeFor(publisher), scheduleFor(publisher));
    } finally {
      release();
    }
  };

  const deliverDue = async (entries: readonly ScheduledEntry[]): Promise<AppendResult[]> => {
    if (!store.ready()) throw storeUnavailable();
    const items = entries.map((entry) => {
      const fields = JSON.parse(entry.fieldsJson) as MessageFields;
      // Always the entry's own key, never the publisher's: the schedule store keeps the publisher's
      // (scheduled and immediate publishes are separate namespaces), so a key an immediate publish
      // already used can never make a due message a conflict and drop it.
      const draft = createDraft(fields, entry.ttlMs / 1000, scheduledMessageKey(entry.id), publishTime());
      return { mailbox: entry.mailbox, draft: { ...draft, id: entry.id, expiresAtMs: draft.timeMs + entry.ttlMs } };
    });
    const results = await append(items);
    announce(results);
    return results;
  };

  return {
    admit,
    publish: (publisher, items, idempotencyKey) => admit(publisher, [], (store) => store(items, idempotencyKey)),
    schedule: (publisher, items, idempotencyKey) =>
      admit(publisher, [], (_store, schedule) => schedule(items, idempotencyKey)),
    deliverDue,
  };
}
