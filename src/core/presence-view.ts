import type { PresenceChange, PresenceMember, PresenceSnapshot } from "../store/presence-store.js";

/** Receives presence events of one mailbox as JSON objects: a snapshot, join, leave, or a count. */
export interface PresenceWatcher {
  presence(events: readonly string[]): void;
}

/** Throttled counts, and the return from counts to listing members, happen at most this often per mailbox. */
export const PRESENCE_COUNT_INTERVAL_MS = 1000;
/**
 * Once over maxMembers, members are listed again only at or below this share
 * of it: a room hovering at the bound does not resend its whole list on every flip.
 */
export const RELIST_SHARE = 0.9;

export function memberJson(member: PresenceMember): string {
  const since = new Date(member.sinceMs).toISOString();
  return `{"sub":${JSON.stringify(member.sub)},"info":${member.info ?? "null"},"connections":${member.connections},"since":"${since}"}`;
}

interface PendingEvent {
  readonly version: number;
  readonly json: string;
}

/**
 * One mailbox as this node's watchers see it: the members from a snapshot
 * plus the store's changes in version order, the events owed to watchers,
 * and the switch between listing members and counting them.
 */
export class PresenceView {
  readonly mailbox: string;
  readonly #maxMembers: number;
  readonly #members = new Map<string, PresenceMember>();
  /** Each watcher with the view's version when it was sent its snapshot (-1: not yet). */
  readonly watchers = new Map<PresenceWatcher, number>();
  #version = 0;
  /** Changes heard while a snapshot loads; applied after it when newer. */
  #buffered: PresenceChange[] | undefined;
  #listed = true;
  #pending: PendingEvent[] = [];
  #countTimer: NodeJS.Timeout | undefined;
  /** The count the last queued event told watchers. */
  #toldCount = 0;
  #snapshotCache: { readonly version: number; readonly listed: boolean; readonly json: string } | undefined;
  readonly #onPending: (view: PresenceView) => void;

  constructor(mailbox: string, maxMembers: number, onPending: (view: PresenceView) => void) {
    this.mailbox = mailbox;
    this.#maxMembers = maxMembers;
    this.#onPending = onPending;
  }

  /**
   * (Re)loads the members from `load`, keeping changes heard meanwhile. A
   * reload (after the store's feed was interrupted) tells watchers the fresh
   * snapshot, since joins and leaves may have been missed.
   */
  async load(load: () => Promise<PresenceSnapshot>, announce: boolean): Promise<void> {
    this.#buffered = [];
    let snapshot: PresenceSnapshot | undefined;
    try {
      snapshot = await load();
    } finally {
      const buffered = this.#buffered ?? [];
      this.#buffered = undefined;
      // A snapshot replaces the members unless changes already took the view past it.
      if (snapshot !== undefined && snapshot.version >= this.#version) {
        this.#members.clear();
        for (const member of snapshot.members) this.#members.set(member.sub, member);
        this.#version = snapshot.version;
      }
      for (const change of buffered) this.#applyQuietly(change);
      this.#listed = this.#members.size <= this.#maxMembers;
      this.#toldCount = this.#members.size;
    }
    if (announce) this.#queue(this.snapshotJson());
  }

  get version(): number {
    return this.#version;
  }

  apply(change: PresenceChange): void {
    if (this.#buffered) {
      this.#buffered.push(change);
      return;
    }
    const before = this.#members.get(change.sub);
    if (!this.#applyQuietly(change)) return;
    const count = this.#members.size;
    if (!this.#listed || count > this.#maxMembers) {
      this.#listed = false;
      this.#scheduleCount();
      return;
    }
    const member = change.member ?? before;
    if ((before === undefined) === (change.member === undefined) || member === undefined) return;
    const type = change.member ? "join" : "leave";
    const since = change.member ? `,"since":"${new Date(change.member.sinceMs).toISOString()}"` : "";
    this.#queue(
      `{"type":"${type}","mailbox":${JSON.stringify(this.mailbox)},"sub":${JSON.stringify(member.sub)},"info":${member.info ?? "null"}${since},"count":${count}}`,
    );
  }

  /** The snapshot event now: every watcher that opens before the next change gets the same text. */
  snapshotJson(): string {
    const listed = this.#listed && this.#members.size <= this.#maxMembers;
    const cached = this.#snapshotCache;
    if (cached?.version === this.#version && cached.listed === listed) return cached.json;
    const mailbox = JSON.stringify(this.mailbox);
    const count = this.#members.size;
    let json: string;
    if (!listed) json = `{"type":"presence","mailbox":${mailbox},"count":${count}}`;
    else {
      const members = [...this.#members.values()].sort((a, b) => a.sinceMs - b.sinceMs).map(memberJson);
      json = `{"type":"presence","mailbox":${mailbox},"count":${count},"members":[${members.join(",")}]}`;
    }
    this.#snapshotCache = { version: this.#version, listed, json };
    return json;
  }

  /** Hands each watcher the events it has not seen (its snapshot holds the ones up to its version). */
  flush(): void {
    const pending = this.#pending;
    if (pending.length === 0) return;
    this.#pending = [];
    const all = pending.map((event) => event.json);
    const first = (pending[0] as PendingEvent).version;
    for (const [watcher, since] of this.watchers) {
      if (since < 0) continue;
      const events = since < first ? all : pending.filter((e) => e.version > since).map((e) => e.json);
      if (events.length > 0) watcher.presence(events);
    }
  }

  close(): void {
    clearTimeout(this.#countTimer);
    this.#countTimer = undefined;
    this.#pending = [];
  }

  /** Applies a change to the members; false when it is not newer than what the view holds. */
  #applyQuietly(change: PresenceChange): boolean {
    if (change.version <= this.#version) return false;
    this.#version = change.version;
    if (change.member) this.#members.set(change.sub, change.member);
    else this.#members.delete(change.sub);
    return true;
  }

  #scheduleCount(): void {
    if (this.#countTimer !== undefined) return;
    this.#countTimer = setTimeout(() => {
      this.#countTimer = undefined;
      const count = this.#members.size;
      if (count <= Math.floor(this.#maxMembers * RELIST_SHARE)) {
        this.#listed = true;
        this.#queue(this.snapshotJson());
        return;
      }
      if (count === this.#toldCount) return;
      this.#queue(`{"type":"presence","mailbox":${JSON.stringify(this.mailbox)},"count":${count}}`);
      // Keep counting while it keeps changing.
      this.#scheduleCount();
    }, PRESENCE_COUNT_INTERVAL_MS);
    this.#countTimer.unref();
  }

  /** Queues an event that tells watchers the count is now the members' size. */
  #queue(json: string): void {
    this.#toldCount = this.#members.size;
    this.#pending.push({ version: this.#version, json });
    this.#onPending(this);
  }
}
