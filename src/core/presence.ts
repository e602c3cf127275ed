import type { PresenceMember, PresenceStore } from "../store/presence-store.js";
import { getOrCreate } from "../util/get-or-create.js";
import { memberJson, PresenceView, type PresenceWatcher } from "./presence-view.js";
import type { Reader } from "./reader.js";

export interface PresenceOptions {
  readonly store: PresenceStore;
  /** Above this many members, watchers get a count at most once a second instead of joins and leaves. */
  readonly maxMembers: number;
  /** How long a long-poller stays present after its poll answered, so a polling client does not flicker. */
  readonly longPollGraceMs: number;
  /** Told about a report the store could not take (it repeats them once it can). */
  readonly onError: (error: unknown) => void;
}

/** What GET …/presence answers; `members` is absent when there are more than maxMembers. */
export interface PresenceAnswer {
  readonly mailbox: string;
  readonly count: number;
  readonly members?: readonly PresenceMember[];
}

/**
 * Joins and leaves are gathered this long and sent in one write per watcher:
 * 1,000 readers arriving at once would otherwise cost each watcher up to 1,000 writes.
 */
export const PRESENCE_BATCH_MS = 50;

interface LocalEntry {
  connections: number;
  readonly sinceMs: number;
  readonly info: string | undefined;
}

interface Lease {
  active: number;
  readonly leave: () => void;
  timer: NodeJS.Timeout | undefined;
}

/** An answer's JSON fields: `"mailbox","count"` and, when listed, `"members"`. */
export function presenceAnswerFields(answer: PresenceAnswer): string {
  const members = answer.members === undefined ? "" : `,"members":[${answer.members.map(memberJson).join(",")}]`;
  return `"mailbox":${JSON.stringify(answer.mailbox)},"count":${answer.count}${members}`;
}

/**
 * Who is here. Connections of this node enter and leave per mailbox and
 * reader; the store adds up every node's. Mailboxes with watchers keep a view
 * (presence-view.ts) that tells them of each reader that joins or leaves,
 * once per reader however many connections it holds; events of one batch
 * (PRESENCE_BATCH_MS) go out in one write per watcher.
 */
export class Presence {
  readonly #options: PresenceOptions;
  readonly #local = new Map<string, Map<string, LocalEntry>>();
  readonly #views = new Map<string, PresenceView>();
  /** Views whose first snapshot is still loading. */
  readonly #loading = new Map<PresenceView, Promise<void>>();
  readonly #leases = new Map<string, Lease>();
  readonly #unwatch: () => void;
  readonly #unresync: () => void;
  /** Views with events waiting for the next batch. */
  readonly #pending = new Set<PresenceView>();
  #flushScheduled = false;
  #closed = false;

  constructor(options: PresenceOptions) {
    this.#options = options;
    this.#unwatch = options.store.watch((change) => this.#views.get(change.mailbox)?.apply(change));
    this.#unresync = options.store.onResync(() => this.#resync());
  }

  /** One more connection of `reader` on each mailbox, until the returned function is called (idempotent). */
  enter(mailboxes: readonly string[], reader: Reader): () => void {
    for (const mailbox of mailboxes) {
      const readers = getOrCreate(this.#local, mailbox, () => new Map());
      const entry = readers.get(reader.sub);
      if (entry) entry.connections += 1;
      else readers.set(reader.sub, { connections: 1, sinceMs: Date.now(), info: reader.info });
      this.#report(mailbox, reader.sub);
    }
    let left = false;
    return () => {
      if (left) return;
      left = true;
      for (const mailbox of mailboxes) {
        const readers = this.#local.get(mailbox);
        const entry = readers?.get(reader.sub);
        if (!readers || !entry) continue;
        entry.connections -= 1;
        if (entry.connections === 0) readers.delete(reader.sub);
        if (readers.size === 0) this.#local.delete(mailbox);
        this.#report(mailbox, reader.sub);
      }
    };
  }

  /** A long-poll of `reader`: present while it waits and for the grace period after, however often it polls. */
  poll(mailboxes: readonly string[], reader: Reader): () => void {
    const leases = mailboxes.map((mailbox) => {
      const key = `${mailbox}\n${reader.sub}`;
      const lease = getOrCreate(this.#leases, key, () => ({
        active: 0,
        leave: this.enter([mailbox], reader),
        timer: undefined,
      }));
      clearTimeout(lease.timer);
      lease.active += 1;
      return { key, lease };
    });
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const { key, lease } of leases) {
        lease.active -= 1;
        if (lease.active > 0) continue;
        lease.timer = setTimeout(() => {
          this.#leases.delete(key);
          lease.leave();
        }, this.#options.longPollGraceMs);
        lease.timer.unref();
      }
    };
  }

  /** Who is on the mailbox now, over every node. */
  async answer(mailbox: string): Promise<PresenceAnswer> {
    const { members } = await this.#options.store.snapshot(mailbox);
    if (members.length > this.#options.maxMembers) return { mailbox, count: members.length };
    return { mailbox, count: members.length, members: [...members].sort((a, b) => a.sinceMs - b.sinceMs) };
  }

  /** Everyone on the mailbox now, over every node, however many (for lists that page or truncate themselves). */
  async members(mailbox: string): Promise<readonly PresenceMember[]> {
    return (await this.#options.store.snapshot(mailbox)).members;
  }

  /** Sends `watcher` the mailbox's snapshot, then its changes, until the returned function is called. */
  async watch(mailbox: string, watcher: PresenceWatcher): Promise<() => void> {
    let view = this.#views.get(mailbox);
    let loaded: Promise<void> | undefined;
    if (view === undefined) {
      view = new PresenceView(mailbox, this.#options.maxMembers, (pending) => this.#schedule(pending));
      this.#views.set(mailbox, view);
      loaded = view.load(() => this.#options.store.snapshot(mailbox), false);
      this.#loading.set(view, loaded);
    } else loaded = this.#loading.get(view);
    view.watchers.set(watcher, -1);
    const opened = view;
    const unwatch = () => {
      if (!opened.watchers.delete(watcher) || opened.watchers.size > 0) return;
      opened.close();
      if (this.#views.get(mailbox) === opened) this.#views.delete(mailbox);
    };
    try {
      await loaded;
    } catch (error) {
      unwatch();
      throw error;
    } finally {
      if (this.#loading.get(opened) === loaded) this.#loading.delete(opened);
    }
    if (opened.watchers.has(watcher)) {
      opened.watchers.set(watcher, opened.version);
      watcher.presence([opened.snapshotJson()]);
    }
    return unwatch;
  }

  /** Ends every lease and view and stops reporting: the store withdraws this node's readers as it closes. */
  close(): void {
    for (const lease of this.#leases.values()) {
      clearTimeout(lease.timer);
      lease.leave();
    }
    this.#leases.clear();
    this.#closed = true;
    for (const view of this.#views.values()) view.close();
    this.#views.clear();
    this.#unwatch();
    this.#unresync();
  }

  #report(mailbox: string, sub: string): void {
    if (this.#closed) return;
    const entry = this.#local.get(mailbox)?.get(sub);
    const presence = entry && { connections: entry.connections, sinceMs: entry.sinceMs, info: entry.info };
    this.#options.store.report(mailbox, sub, presence).catch(this.#options.onError);
  }

  /** The store may have missed changes: every view reloads and tells its watchers the fresh snapshot. */
  #resync(): void {
    for (const view of this.#views.values()) {
      if (this.#loading.has(view)) continue;
      view.load(() => this.#options.store.snapshot(view.mailbox), true).catch(this.#options.onError);
    }
  }

  #schedule(view: PresenceView): void {
    this.#pending.add(view);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setTimeout(() => this.#flush(), PRESENCE_BATCH_MS).unref();
  }

  #flush(): void {
    this.#flushScheduled = false;
    const views = [...this.#pending];
    this.#pending.clear();
    for (const view of views) {
      try {
        view.flush();
      } catch (error) {
        // A watcher that throws is a bug; the others and the process carry on.
        this.#options.onError(error);
      }
    }
  }
}
