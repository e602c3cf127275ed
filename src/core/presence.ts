import type { PresenceChange, PresenceMember, PresenceStore } from "../store/presence-store.js";
import { getOrCreate } from "../util/get-or-create.js";
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

/** Receives presence events of one mailbox as JSON objects: a snapshot, join, leave, or a count. */
export interface PresenceWatcher {
  presence(events: readonly string[]): void;
}

/** What GET …/presence answers; `members` is absent when there are more than maxMembers. */
export interface PresenceAnswer {
  readonly mailbox: string;
  readonly count: number;
  readonly members?: readonly PresenceMember[];
}

/** Throttled counts go out at most this often per mailbox. */
export const PRESENCE_COUNT_INTERVAL_MS = 1000;
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

interface View {
  readonly mailbox: string;
  readonly members: Map<string, PresenceMember>;
  /** Each watcher with the view's version when it was sent its snapshot (-1: not yet). */
  readonly watchers: Map<PresenceWatcher, number>;
  version: number;
  /** Changes heard while the snapshot loads; applied after it when newer. */
  buffered: PresenceChange[] | undefined;
  loaded: Promise<void>;
  /** False while over maxMembers: watchers get counts, not members. */
  listed: boolean;
  pending: { readonly version: number; readonly json: string }[];
  countTimer: NodeJS.Timeout | undefined;
  lastCount: number;
  /** The snapshot event as of `version`: every watcher that opens before the next change gets the same text. */
  snapshot: { readonly version: number; readonly json: string } | undefined;
}

interface Lease {
  active: number;
  readonly leave: () => void;
  timer: NodeJS.Timeout | undefined;
}

export function memberJson(member: PresenceMember): string {
  const since = new Date(member.sinceMs).toISOString();
  return `{"sub":${JSON.stringify(member.sub)},"info":${member.info ?? "null"},"connections":${member.connections},"since":"${since}"}`;
}

/** An answer's JSON fields: `"mailbox","count"` and, when listed, `"members"`. */
export function presenceAnswerFields(answer: PresenceAnswer): string {
  const members = answer.members === undefined ? "" : `,"members":[${answer.members.map(memberJson).join(",")}]`;
  return `"mailbox":${JSON.stringify(answer.mailbox)},"count":${answer.count}${members}`;
}

/**
 * Who is here. Connections of this node enter and leave per mailbox and
 * reader; the store adds up every node's. Mailboxes with watchers keep a view
 * (a snapshot, then the store's changes in version order) and tell their
 * watchers of each reader that joins or leaves, once per reader however many
 * connections it holds; events of one batch (PRESENCE_BATCH_MS) go out in one write.
 */
export class Presence {
  readonly #options: PresenceOptions;
  readonly #local = new Map<string, Map<string, LocalEntry>>();
  readonly #views = new Map<string, View>();
  readonly #leases = new Map<string, Lease>();
  readonly #unwatch: () => void;
  #flushScheduled = false;

  constructor(options: PresenceOptions) {
    this.#options = options;
    this.#unwatch = options.store.watch((change) => this.#onChange(change));
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

  /** Sends `watcher` the mailbox's snapshot, then its changes, until the returned function is called. */
  async watch(mailbox: string, watcher: PresenceWatcher): Promise<() => void> {
    let view = this.#views.get(mailbox);
    if (view === undefined) view = this.#openView(mailbox);
    view.watchers.set(watcher, -1);
    const unwatch = () => {
      const current = this.#views.get(mailbox);
      if (!current?.watchers.delete(watcher) || current.watchers.size > 0) return;
      clearTimeout(current.countTimer);
      this.#views.delete(mailbox);
    };
    try {
      await view.loaded;
    } catch (error) {
      unwatch();
      throw error;
    }
    if (view.watchers.has(watcher)) {
      view.watchers.set(watcher, view.version);
      watcher.presence([this.#snapshotJson(view)]);
    }
    return unwatch;
  }

  /** Ends every lease and view; the store hears each reader leave. */
  close(): void {
    for (const lease of this.#leases.values()) {
      clearTimeout(lease.timer);
      lease.leave();
    }
    this.#leases.clear();
    for (const view of this.#views.values()) clearTimeout(view.countTimer);
    this.#views.clear();
    this.#unwatch();
  }

  #report(mailbox: string, sub: string): void {
    const entry = this.#local.get(mailbox)?.get(sub);
    const presence = entry && { connections: entry.connections, sinceMs: entry.sinceMs, info: entry.info };
    this.#options.store.report(mailbox, sub, presence).catch(this.#options.onError);
  }

  #openView(mailbox: string): View {
    const view: View = {
      mailbox,
      members: new Map(),
      watchers: new Map(),
      version: 0,
      buffered: [],
      loaded: Promise.resolve(),
      listed: true,
      pending: [],
      countTimer: undefined,
      lastCount: 0,
      snapshot: undefined,
    };
    this.#views.set(mailbox, view);
    view.loaded = this.#options.store.snapshot(mailbox).then(
      (snapshot) => {
        for (const member of snapshot.members) view.members.set(member.sub, member);
        view.version = snapshot.version;
        const buffered = view.buffered ?? [];
        view.buffered = undefined;
        view.listed = view.members.size <= this.#options.maxMembers;
        view.lastCount = view.members.size;
        for (const change of buffered) this.#apply(view, change, false);
      },
      (error: unknown) => {
        if (this.#views.get(mailbox) === view) this.#views.delete(mailbox);
        throw error;
      },
    );
    return view;
  }

  #onChange(change: PresenceChange): void {
    const view = this.#views.get(change.mailbox);
    if (view === undefined) return;
    if (view.buffered) view.buffered.push(change);
    else this.#apply(view, change, true);
  }

  #apply(view: View, change: PresenceChange, announce: boolean): void {
    if (change.version <= view.version) return;
    view.version = change.version;
    const before = view.members.get(change.sub);
    if (change.member) view.members.set(change.sub, change.member);
    else view.members.delete(change.sub);
    if (!announce) return;
    const count = view.members.size;
    if (count > this.#options.maxMembers) {
      view.listed = false;
      this.#scheduleCount(view);
      return;
    }
    if (!view.listed) {
      view.listed = true;
      clearTimeout(view.countTimer);
      view.countTimer = undefined;
      this.#queue(view, this.#snapshotJson(view));
      return;
    }
    const member = change.member ?? before;
    if ((before === undefined) === (change.member === undefined) || member === undefined) return;
    const type = change.member ? "join" : "leave";
    const since = change.member ? `,"since":"${new Date(change.member.sinceMs).toISOString()}"` : "";
    this.#queue(
      view,
      `{"type":"${type}","mailbox":${JSON.stringify(view.mailbox)},"sub":${JSON.stringify(member.sub)},"info":${member.info ?? "null"}${since},"count":${count}}`,
    );
  }

  #snapshotJson(view: View): string {
    if (view.snapshot?.version === view.version) return view.snapshot.json;
    const mailbox = JSON.stringify(view.mailbox);
    const count = view.members.size;
    let json: string;
    if (count > this.#options.maxMembers) json = `{"type":"presence","mailbox":${mailbox},"count":${count}}`;
    else {
      const members = [...view.members.values()].sort((a, b) => a.sinceMs - b.sinceMs).map(memberJson);
      json = `{"type":"presence","mailbox":${mailbox},"count":${count},"members":[${members.join(",")}]}`;
    }
    view.snapshot = { version: view.version, json };
    return json;
  }

  #scheduleCount(view: View): void {
    if (view.countTimer !== undefined) return;
    view.countTimer = setTimeout(() => {
      view.countTimer = undefined;
      if (this.#views.get(view.mailbox) !== view || view.listed) return;
      const count = view.members.size;
      if (count === view.lastCount) return;
      this.#queue(view, `{"type":"presence","mailbox":${JSON.stringify(view.mailbox)},"count":${count}}`);
      // Keep counting while it keeps changing.
      this.#scheduleCount(view);
    }, PRESENCE_COUNT_INTERVAL_MS);
    view.countTimer.unref();
  }

  /** Queues an event that tells watchers the mailbox's count is now `view.members.size`. */
  #queue(view: View, json: string): void {
    view.lastCount = view.members.size;
    view.pending.push({ version: view.version, json });
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setTimeout(() => this.#flush(), PRESENCE_BATCH_MS).unref();
  }

  #flush(): void {
    this.#flushScheduled = false;
    for (const view of this.#views.values()) {
      if (view.pending.length === 0) continue;
      const pending = view.pending;
      view.pending = [];
      const all = pending.map((event) => event.json);
      for (const [watcher, since] of view.watchers) {
        // A watcher's snapshot already holds what happened up to its version.
        if (since < 0) continue;
        const events =
          since < (pending[0]?.version ?? 0) ? all : pending.filter((e) => e.version > since).map((e) => e.json);
        if (events.length > 0) watcher.presence(events);
      }
    }
  }
}
