import { HeraldError } from "../errors.js";
import type { AppendResult, MailboxStore, StoredMessage } from "../store/mailbox-store.js";
import { encodeSingleCursor } from "./cursor.js";
import type { DrainGate } from "./drain-gate.js";
import { assertMailboxName } from "./mailbox-name.js";
import { createDraft, type MessageFields } from "./message-input.js";

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
  /** Admits a publish on arrival; `work` reads the request and calls `store` with its items. */
  admit<T>(
    publisher: Publisher,
    knownMailboxes: readonly string[],
    work: (store: StoreItems) => Promise<T>,
  ): Promise<T>;
  /** Admits and stores at once, for items already in hand. */
  publish(publisher: Publisher, items: readonly PublishItem[], idempotencyKey?: string): Promise<Published[]>;
}

export interface PublishCommandOptions {
  readonly store: MailboxStore;
  readonly gate: DrainGate;
  /** Retention of a message whose publisher gave no ttl. */
  readonly defaultTtlSeconds: number;
  /** Counts stored messages (not duplicates). */
  readonly onStored: (count: number) => void;
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

  const storeFor =
    (publisher: Publisher): StoreItems =>
    async (items, idempotencyKey) => {
      if (items.length === 0 || items.length > MAX_BATCH_ITEMS) {
        throw new HeraldError("bad_message", `A publish carries 1 to ${MAX_BATCH_ITEMS} messages, got ${items.length}`);
      }
      const mailboxes = items.map((item) => assertMailboxName(item.mailbox));
      publisher.authorize(mailboxes);
      publisher.charge();
      if (!store.ready()) throw storeUnavailable();
      const drafts = items.map((item, index) => ({
        mailbox: item.mailbox,
        draft: createDraft(
          item.fields,
          options.defaultTtlSeconds,
          // With several items the key is made per item.
          idempotencyKey === undefined || items.length === 1 ? idempotencyKey : `${idempotencyKey}#${index}`,
          publishTime(),
        ),
      }));
      // Held even without an admission (a drain that began after it): the append must finish first.
      const release = gate.hold();
      let results: AppendResult[];
      try {
        results = await store.append(drafts);
      } catch (error) {
        throw error instanceof HeraldError ? error : storeUnavailable();
      } finally {
        release();
      }
      if (results.some((result) => result.status === "conflict")) throw new HeraldError("idempotency_conflict");
      options.onStored(results.filter((result) => result.status === "stored").length);
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
      return await work(storeFor(publisher));
    } finally {
      release();
    }
  };

  return {
    admit,
    publish: (publisher, items, idempotencyKey) => admit(publisher, [], (store) => store(items, idempotencyKey)),
  };
}
