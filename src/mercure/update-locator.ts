import { CURSOR_NOW, encodeCursor } from "../core/cursor.js";
import { positionBeforeTime } from "../core/time-position.js";
import type { MailboxStore, StoredMessage, StreamPosition } from "../store/mailbox-store.js";
import { growingLru } from "../util/growing-lru.js";
import { EARLIEST, updateOf } from "./mercure-update.js";

/** Messages read per step of a scan for an id. */
const SCAN_PAGE = 500;
/** Ids remembered per node, so a reconnect right after a publish or a scan reads one message, not the log. */
const REMEMBERED_IDS = 10_000;
/** How long an id that was not found is answered "not found" without another scan. */
const MISS_TTL_MS = 2000;
const START: StreamPosition = { epoch: "", seq: 0 };

/** Where a subscriber resumes, and what `Mercure-Last-Event-ID` answers (undefined: no id was asked for). */
export interface ResumePoint {
  /** A Herald cursor: "now", the positions just after the update asked for, or undefined for the earliest retained. */
  readonly cursor: string | undefined;
  readonly lastEventId: string | undefined;
}

/** Where an update lies: its mailbox, position and time. */
interface Located extends StreamPosition {
  readonly mailbox: string;
  readonly timeMs: number;
}

/**
 * Finds updates by their Mercure id in the hub's logs (its updates, and its
 * subscription events when they are on). Ids are the publisher's to choose,
 * so a log is scanned from its earliest message (the first update bearing an
 * id wins, as the standard asks), at most `maxScan` messages per log; found
 * and published ids are remembered per node, and misses for a moment.
 */
export class UpdateLocator {
  readonly #store: MailboxStore;
  readonly #maxScan: number;
  readonly #known = growingLru<string, Located>(REMEMBERED_IDS);
  readonly #missing = growingLru<string, true>(REMEMBERED_IDS, { ttl: MISS_TTL_MS });

  constructor(store: MailboxStore, maxScan: number) {
    this.#store = store;
    this.#maxScan = maxScan;
  }

  /** Notes a stored update's position; the first position of an id is kept. */
  remember(message: StoredMessage): void {
    const update = updateOf(message);
    if (update === undefined || this.#known.has(update.id)) return;
    this.#known.set(update.id, {
      mailbox: message.mailbox,
      epoch: message.epoch,
      seq: message.seq,
      timeMs: message.timeMs,
    });
    this.#missing.delete(update.id);
  }

  /**
   * Where a subscriber of `mailboxes` that sent `lastEventId` (or none) starts:
   * right after the update in its log, and in the other log after the last
   * message no newer than it.
   */
  async resume(lastEventId: string | undefined, mailboxes: readonly string[]): Promise<ResumePoint> {
    if (lastEventId === undefined) return { cursor: CURSOR_NOW, lastEventId: undefined };
    if (lastEventId === EARLIEST) return { cursor: undefined, lastEventId: EARLIEST };
    const found = await this.locate(lastEventId, mailboxes);
    if (found === undefined) return { cursor: undefined, lastEventId: EARLIEST };
    const positions = new Map<string, StreamPosition>([[found.mailbox, { epoch: found.epoch, seq: found.seq }]]);
    for (const mailbox of mailboxes) {
      if (mailbox === found.mailbox) continue;
      // Publish times rise strictly on a node (1/1024 ms steps): what is newer than the update follows it.
      const position = await positionBeforeTime(this.#store, mailbox, found.timeMs + 1 / 2048);
      if (position !== undefined) positions.set(mailbox, position);
    }
    return { cursor: encodeCursor(mailboxes, positions), lastEventId };
  }

  /** The retained update bearing `id` in one of `mailboxes`, or undefined when it is gone or never was. */
  async locate(id: string, mailboxes: readonly string[]): Promise<Located | undefined> {
    const known = this.#known.get(id);
    if (known !== undefined && mailboxes.includes(known.mailbox)) {
      const read = await this.#store.read(known.mailbox, { epoch: known.epoch, seq: known.seq - 1 }, 1);
      const message = read.messages[0];
      if (message && message.epoch === known.epoch && message.seq === known.seq) return known;
      this.#known.delete(id);
    }
    if (this.#missing.has(id)) return undefined;
    for (const mailbox of mailboxes) {
      const found = await this.#scan(mailbox, id);
      if (found !== undefined) return found;
    }
    this.#missing.set(id, true);
    return undefined;
  }

  /** The id of the newest retained update over `mailboxes`, or "earliest" when there is none: discovery's cursor. */
  async lastEventId(mailboxes: readonly string[]): Promise<string> {
    let newest: StoredMessage | undefined;
    for (const mailbox of mailboxes) {
      const head = await this.#store.head(mailbox);
      if (head === undefined || head.lastSeq === 0) continue;
      const read = await this.#store.read(mailbox, { epoch: head.epoch, seq: head.lastSeq - 1 }, 1);
      const message = read.messages[0];
      if (message?.seq === head.lastSeq && (newest === undefined || message.timeMs > newest.timeMs)) newest = message;
    }
    return (newest && updateOf(newest)?.id) ?? EARLIEST;
  }

  async #scan(mailbox: string, id: string): Promise<Located | undefined> {
    // The id as the stored JSON spells it: most messages are passed over without being parsed.
    const needle = JSON.stringify(id);
    let after = START;
    let scanned = 0;
    while (scanned < this.#maxScan) {
      const read = await this.#store.read(mailbox, after, Math.min(SCAN_PAGE, this.#maxScan - scanned));
      if (read.messages.length === 0) return undefined;
      for (const message of read.messages) {
        if (message.json.includes(needle) && updateOf(message)?.id === id) {
          this.remember(message);
          return { mailbox, epoch: message.epoch, seq: message.seq, timeMs: message.timeMs };
        }
      }
      scanned += read.messages.length;
      const last = read.messages[read.messages.length - 1] as StoredMessage;
      after = { epoch: last.epoch, seq: last.seq };
    }
    return undefined;
  }
}
