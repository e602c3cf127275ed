import type { MailboxRead, StoredMessage, StreamPosition } from "./mailbox-store.js";

/** What catching up needs from the store: reads that do not mark interest, and heads. */
export interface CatchUpSource {
  read(mailbox: string, after: StreamPosition, limit: number): Promise<MailboxRead>;
  /** Each mailbox's last position, null when it does not exist, undefined when it could not be asked. */
  heads(mailboxes: readonly string[]): Promise<(StreamPosition | null | undefined)[]>;
  /** True while heads() can be asked. */
  connected(): boolean;
  /** Tells the listeners: committed messages in seq order, or undefined for "it moved, re-read". */
  emit(mailbox: string, messages: readonly StoredMessage[] | undefined): void;
}

/** Mailboxes compared with Redis per check tick. */
const MAX_CHECKS_PER_TICK = 1000;
/** Mailboxes whose interest this node remembers; beyond it the longest-unchecked is forgotten. */
const MAX_TRACKED_MAILBOXES = 50_000;
/** A tracked mailbox not read for this long is probed once with a wake-up, then forgotten if still unread. */
const IDLE_PROBE_MS = 10 * 60_000;
/** Messages read per step when fetching other nodes' appends for local listeners. */
const PULL_PAGE_SIZE = 500;

interface Interest {
  /** What the listeners were last told about: the log up to here. */
  told: StreamPosition;
  touchedAt: number;
  probed: boolean;
}

/**
 * Keeps this node's listeners up to date with mailboxes other nodes append
 * to. Mailboxes read here are tracked; a wake-up for one is turned into one
 * read for the whole node (a "pull") whose messages go to the listeners, and
 * a periodic check against Redis catches the wake-ups pub/sub dropped.
 */
export class CatchUp {
  readonly #source: CatchUpSource;
  readonly #interest = new Map<string, Interest>();
  /** Mailboxes being pulled; true when another pull was asked for meanwhile. */
  readonly #pulling = new Map<string, boolean>();
  #checking = false;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(source: CatchUpSource) {
    this.#source = source;
  }

  get tracked(): number {
    return this.#interest.size;
  }

  start(intervalMs: number): void {
    this.#timer = setInterval(() => void this.check(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  /** Reads mark interest: a mailbox someone here reads is one whose wake-ups must not be missed. */
  touch(mailbox: string, epoch: string, seq: number): void {
    const interest = this.#interest.get(mailbox);
    if (interest) {
      interest.touchedAt = Date.now();
      interest.probed = false;
      return;
    }
    this.#interest.set(mailbox, { told: { epoch, seq }, touchedAt: Date.now(), probed: false });
    if (this.#interest.size > MAX_TRACKED_MAILBOXES) {
      this.#interest.delete(this.#interest.keys().next().value as string);
    }
  }

  /** Records that the listeners were told about the log up to (epoch, seq). */
  advance(mailbox: string, epoch: string, seq: number): void {
    const interest = this.#interest.get(mailbox);
    if (!interest || (interest.told.epoch === epoch && interest.told.seq >= seq)) return;
    interest.told = { epoch, seq };
  }

  /**
   * This node appended `messages` (seq order, one mailbox): returns those the
   * listeners should be told of now. When other nodes' appends came between
   * what the listeners were told and these, they are told nothing yet: a pull
   * reads the lot in order, so no subscriber sees a hole and re-reads alone.
   */
  appended(mailbox: string, messages: readonly StoredMessage[]): readonly StoredMessage[] {
    const interest = this.#interest.get(mailbox);
    const first = messages[0];
    const last = messages[messages.length - 1];
    if (!first || !last) return messages;
    // Told nothing yet (the mailbox was new to the listeners): any epoch's seq 1 follows.
    const fresh = interest !== undefined && interest.told.seq === 0;
    if (!interest || (interest.told.epoch !== first.epoch && !fresh)) {
      this.advance(mailbox, last.epoch, last.seq);
      return messages;
    }
    const seq = fresh && interest.told.epoch !== first.epoch ? 0 : interest.told.seq;
    if (first.seq > seq + 1) {
      this.#pull(mailbox);
      return [];
    }
    this.advance(mailbox, last.epoch, last.seq);
    // A pull may have read some of these already.
    return first.seq > seq ? messages : messages.filter((message) => message.seq > seq);
  }

  /** Another node appended up to (epoch, seq). */
  onWake(mailbox: string, epoch: string, seq: number): void {
    const interest = this.#interest.get(mailbox);
    // Untracked: nobody here read it lately; whoever cares re-reads (and so starts tracking it).
    if (!interest) this.#source.emit(mailbox, undefined);
    else if (interest.told.epoch !== epoch || interest.told.seq < seq) this.#pull(mailbox);
  }

  /** Compares every tracked mailbox, a tick's worth at a time; after a reconnect. */
  async checkAll(): Promise<void> {
    for (let rounds = Math.ceil(this.#interest.size / MAX_CHECKS_PER_TICK); rounds > 0; rounds--) {
      if (!(await this.check())) return;
    }
  }

  /** Compares up to MAX_CHECKS_PER_TICK tracked mailboxes with Redis, round-robin; false when it could not. */
  async check(): Promise<boolean> {
    if (this.#checking || this.#stopped || !this.#source.connected() || this.#interest.size === 0) return false;
    this.#checking = true;
    try {
      const now = Date.now();
      const batch: string[] = [];
      const probes: string[] = [];
      for (const [mailbox, interest] of this.#interest) {
        if (batch.length + probes.length >= MAX_CHECKS_PER_TICK) break;
        if (now - interest.touchedAt > IDLE_PROBE_MS) {
          if (interest.probed) {
            this.#interest.delete(mailbox);
            continue;
          }
          interest.probed = true;
          probes.push(mailbox);
        } else {
          batch.push(mailbox);
        }
      }
      // Checked entries move to the back, so the next tick starts where this one stopped.
      for (const mailbox of [...batch, ...probes]) {
        const interest = this.#interest.get(mailbox) as Interest;
        this.#interest.delete(mailbox);
        this.#interest.set(mailbox, interest);
      }
      const heads = await this.#source.heads(batch);
      batch.forEach((mailbox, i) => {
        const head = heads[i];
        const interest = this.#interest.get(mailbox);
        if (head === undefined || !interest) return;
        const { told } = interest;
        const moved = head === null ? told.seq > 0 : head.epoch !== told.epoch || head.seq > told.seq;
        if (moved) this.#pull(mailbox);
      });
      for (const mailbox of probes) this.#source.emit(mailbox, undefined);
      return true;
    } catch {
      return false;
    } finally {
      this.#checking = false;
    }
  }

  /**
   * Reads what other nodes appended to a tracked mailbox once for the whole
   * node and hands it to the listeners like a local append, so a thousand
   * local subscribers cost one read, not a thousand. One pull per mailbox at
   * a time keeps the listeners' view in seq order.
   */
  #pull(mailbox: string): void {
    if (this.#pulling.has(mailbox)) {
      this.#pulling.set(mailbox, true);
      return;
    }
    this.#pulling.set(mailbox, false);
    void (async () => {
      try {
        let more = true;
        while (more || this.#pulling.get(mailbox)) {
          this.#pulling.set(mailbox, false);
          more = await this.#pullOnce(mailbox);
        }
      } finally {
        this.#pulling.delete(mailbox);
      }
    })();
  }

  /** One page of a pull; true when the log holds more after it. */
  async #pullOnce(mailbox: string): Promise<boolean> {
    const interest = this.#interest.get(mailbox);
    if (!interest || this.#stopped) return false;
    const { epoch, seq } = interest.told;
    let read: MailboxRead;
    try {
      read = await this.#source.read(mailbox, interest.told, PULL_PAGE_SIZE);
    } catch {
      this.#source.emit(mailbox, undefined);
      return false;
    }
    const { log, messages } = read;
    const first = messages[0];
    const last = messages[messages.length - 1];
    const contiguous =
      log !== undefined &&
      first !== undefined &&
      ((first.epoch === epoch && first.seq === seq + 1) || (seq === 0 && first.seq === 1));
    if (!contiguous || !last) {
      // Nothing new, or a hole (expiry, trimming, a new epoch): the listeners' own re-read reports it.
      const moved = log ? log.epoch !== epoch || log.lastSeq > seq : seq > 0;
      if (!moved) return false;
      interest.told = { epoch: log?.epoch ?? "", seq: log?.lastSeq ?? 0 };
      this.#source.emit(mailbox, undefined);
      return false;
    }
    // This node's own appends may have been told while the read was out: a repeat would look like a hole.
    const told = interest.told;
    const news =
      told.epoch === last.epoch && told.seq > seq ? messages.filter((message) => message.seq > told.seq) : messages;
    this.advance(mailbox, last.epoch, last.seq);
    if (news.length > 0) this.#source.emit(mailbox, news);
    return (log?.lastSeq ?? 0) > last.seq;
  }
}
