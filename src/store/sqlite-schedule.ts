import type Database from "better-sqlite3";
import {
  type CancelResult,
  type CompletedDelivery,
  originalOf,
  type ScheduleAddResult,
  type ScheduleBounds,
  type ScheduledDraft,
  type ScheduledEntry,
  type ScheduledOriginal,
  type ScheduleStore,
} from "./schedule-store.js";
import { orUnavailable, storeClosed } from "./store-unavailable.js";

export interface SqliteScheduleOptions {
  /** The SQLite store's database (SqliteStore.database); its migrations made the tables. */
  readonly db: Database.Database;
  readonly now?: () => number;
}

interface EntryRow {
  id: string;
  mailbox: string;
  due_at_ms: number;
  ready_at_ms: number;
  ttl_ms: number;
  fields_json: string;
  idempotency_key: string | null;
  fingerprint: string | null;
}

interface KeyRow {
  id: string;
  due_at_ms: number;
  fingerprint: string | null;
  expires_at_ms: number | null;
}

/** Expired key records deleted per claim at most, so a sweep never stalls the loop. */
const KEY_SWEEP_BATCH = 500;
const COLUMNS = "id, mailbox, due_at_ms, ready_at_ms, ttl_ms, fields_json, idempotency_key, fingerprint";

function prepare(db: Database.Database) {
  return {
    insert: db.prepare<[string, string, number, number, number, string, string | null, string | null]>(
      `INSERT INTO scheduled (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    get: db.prepare<[string], EntryRow>(`SELECT ${COLUMNS} FROM scheduled WHERE id = ?`),
    list: db.prepare<[string, number], EntryRow>(
      `SELECT ${COLUMNS} FROM scheduled WHERE mailbox = ? ORDER BY due_at_ms, pos LIMIT ?`,
    ),
    due: db.prepare<[number, number], EntryRow>(
      `SELECT ${COLUMNS} FROM scheduled WHERE ready_at_ms <= ? ORDER BY ready_at_ms, pos LIMIT ?`,
    ),
    lease: db.prepare<[number, string]>("UPDATE scheduled SET ready_at_ms = ? WHERE id = ?"),
    remove: db.prepare<[string]>("DELETE FROM scheduled WHERE id = ?"),
    countMailbox: db.prepare<[string], { n: number }>("SELECT count(*) AS n FROM scheduled WHERE mailbox = ?"),
    countAll: db.prepare<[], { n: number }>("SELECT count(*) AS n FROM scheduled"),
    next: db.prepare<[], { at: number | null }>("SELECT min(ready_at_ms) AS at FROM scheduled"),
    // Claims of an earlier process are dead: one Herald holds a data directory.
    releaseLeases: db.prepare("UPDATE scheduled SET ready_at_ms = due_at_ms WHERE ready_at_ms > due_at_ms"),
    key: db.prepare<[string, string], KeyRow>(
      "SELECT id, due_at_ms, fingerprint, expires_at_ms FROM scheduled_keys WHERE mailbox = ? AND key = ?",
    ),
    putKey: db.prepare<[string, string, string, number, string | null]>(
      `REPLACE INTO scheduled_keys (mailbox, key, id, due_at_ms, fingerprint, expires_at_ms)
       VALUES (?, ?, ?, ?, ?, NULL)`,
    ),
    deliverKey: db.prepare<[number, string, string, string]>(
      "UPDATE scheduled_keys SET expires_at_ms = ? WHERE mailbox = ? AND key = ? AND id = ?",
    ),
    freeKey: db.prepare<[string, string, string]>(
      "DELETE FROM scheduled_keys WHERE mailbox = ? AND key = ? AND id = ?",
    ),
    sweepKeys: db.prepare<[number, number]>(
      `DELETE FROM scheduled_keys WHERE (mailbox, key) IN
         (SELECT mailbox, key FROM scheduled_keys WHERE expires_at_ms <= ? LIMIT ?)`,
    ),
  };
}

function toEntry(row: EntryRow): ScheduledEntry {
  return {
    id: row.id,
    mailbox: row.mailbox,
    dueAtMs: row.due_at_ms,
    fieldsJson: row.fields_json,
    ttlMs: row.ttl_ms,
    ...(row.idempotency_key === null ? {} : { idempotencyKey: row.idempotency_key }),
    ...(row.fingerprint === null ? {} : { fingerprint: row.fingerprint }),
  };
}

/**
 * Scheduled publishes in the SQLite store's database: they survive a restart
 * and are delivered then (late ones at once). Every call is one synchronous
 * transaction on the store's connection, so a claim is atomic by itself.
 */
export class SqliteSchedule implements ScheduleStore {
  readonly #db: Database.Database;
  readonly #sql: ReturnType<typeof prepare>;
  readonly #now: () => number;
  /** The connection's PRAGMA synchronous (2: FULL), restored after the claims and completions that skip it. */
  readonly #synchronous: number;
  #total: number;
  #closed = false;

  constructor(options: SqliteScheduleOptions) {
    this.#db = options.db;
    this.#now = options.now ?? Date.now;
    this.#sql = prepare(this.#db);
    this.#synchronous = this.#db.pragma("synchronous", { simple: true }) as number;
    this.#sql.releaseLeases.run();
    this.#total = (this.#sql.countAll.get() as { n: number }).n;
  }

  add(drafts: readonly ScheduledDraft[], bounds: ScheduleBounds): Promise<ScheduleAddResult[]> {
    return this.#attempt(() => this.#db.transaction(() => this.#add(drafts, bounds))());
  }

  #add(drafts: readonly ScheduledDraft[], bounds: ScheduleBounds): ScheduleAddResult[] {
    const results: ScheduleAddResult[] = [];
    const adding: ScheduledDraft[] = [];
    const inCall = new Map<string, ScheduledDraft>();
    const perMailbox = new Map<string, number>();
    for (const draft of drafts) {
      const key = draft.idempotencyKey;
      const earlier = key === undefined ? undefined : inCall.get(`${draft.mailbox} ${key}`);
      const record = key === undefined || earlier ? undefined : this.#record(draft.mailbox, key);
      const original: ScheduledOriginal | undefined = earlier ? originalOf(earlier) : record?.original;
      if (original) {
        const fingerprint = earlier ? earlier.fingerprint : record?.fingerprint;
        if (fingerprint !== draft.fingerprint) return [{ status: "conflict", entry: original }];
        results.push({ status: "duplicate", entry: original });
        continue;
      }
      if (key !== undefined) inCall.set(`${draft.mailbox} ${key}`, draft);
      results.push({ status: "scheduled", entry: originalOf(draft) });
      adding.push(draft);
      perMailbox.set(draft.mailbox, (perMailbox.get(draft.mailbox) ?? 0) + 1);
    }
    if (this.#total + adding.length > bounds.maxTotal) return [{ status: "full", mailbox: undefined }];
    for (const [mailbox, count] of perMailbox) {
      const held = (this.#sql.countMailbox.get(mailbox) as { n: number }).n;
      if (held + count > bounds.maxPerMailbox) return [{ status: "full", mailbox }];
    }
    for (const draft of adding) {
      const key = draft.idempotencyKey ?? null;
      const fingerprint = draft.fingerprint ?? null;
      const { id, mailbox, dueAtMs } = draft;
      this.#sql.insert.run(id, mailbox, dueAtMs, dueAtMs, draft.ttlMs, draft.fieldsJson, key, fingerprint);
      if (key !== null) this.#sql.putKey.run(mailbox, key, id, dueAtMs, fingerprint);
    }
    this.#total += adding.length;
    return results;
  }

  list(mailbox: string, limit: number): Promise<ScheduledEntry[]> {
    return this.#attempt(() => this.#sql.list.all(mailbox, limit).map(toEntry));
  }

  get(id: string): Promise<ScheduledEntry | undefined> {
    return this.#attempt(() => {
      const row = this.#sql.get.get(id);
      return row && toEntry(row);
    });
  }

  cancel(id: string, nowMs: number): Promise<CancelResult> {
    return this.#attempt(() =>
      this.#db.transaction((): CancelResult => {
        const row = this.#sql.get.get(id);
        if (!row) return "missing";
        if (row.ready_at_ms > row.due_at_ms && row.ready_at_ms > nowMs) return "delivering";
        this.#remove(row.id, row.mailbox, row.idempotency_key);
        return "cancelled";
      })(),
    );
  }

  claim(nowMs: number, leaseUntilMs: number, max: number): Promise<ScheduledEntry[]> {
    return this.#attempt(() =>
      this.#unsynced(() => {
        this.#sql.sweepKeys.run(this.#now(), KEY_SWEEP_BATCH);
        const rows = this.#sql.due.all(nowMs, max);
        for (const row of rows) this.#sql.lease.run(leaseUntilMs, row.id);
        return rows.map(toEntry);
      }),
    );
  }

  complete(done: readonly CompletedDelivery[]): Promise<void> {
    return this.#attempt(() =>
      this.#unsynced(() => {
        for (const { entry, expiresAtMs } of done) {
          const key = entry.idempotencyKey;
          if (this.#sql.get.get(entry.id) === undefined) continue;
          if (key === undefined || expiresAtMs === undefined) this.#remove(entry.id, entry.mailbox, key ?? null);
          else {
            this.#removeEntry(entry.id);
            this.#sql.deliverKey.run(expiresAtMs, entry.mailbox, key, entry.id);
          }
        }
      }),
    );
  }

  nextDueAt(): Promise<number | undefined> {
    return this.#attempt(() => this.#sql.next.get()?.at ?? undefined);
  }

  pending(): Promise<number> {
    return this.#attempt(() => this.#total);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #attempt<T>(work: () => T): Promise<T> {
    return orUnavailable(() => {
      if (this.#closed || !this.#db.open) throw storeClosed();
      return work();
    });
  }

  /**
   * A transaction committed without an fsync of its own (`--sync full` costs one per commit, and a
   * delivery round makes three). Neither needs one: a claim lost to a power failure is released at
   * the next start anyway, and a lost completion only makes the entry's append run again, which its
   * idempotency key turns into a duplicate. The next synced commit (an append) syncs it too.
   */
  #unsynced<T>(work: () => T): T {
    if (this.#synchronous < 2) return this.#db.transaction(work)();
    this.#db.pragma("synchronous = NORMAL");
    try {
      return this.#db.transaction(work)();
    } finally {
      this.#db.pragma(`synchronous = ${this.#synchronous}`);
    }
  }

  #record(mailbox: string, key: string): { original: ScheduledOriginal; fingerprint?: string } | undefined {
    const row = this.#sql.key.get(mailbox, key);
    if (!row || (row.expires_at_ms !== null && row.expires_at_ms <= this.#now())) return undefined;
    return {
      original: { id: row.id, mailbox, dueAtMs: row.due_at_ms },
      ...(row.fingerprint === null ? {} : { fingerprint: row.fingerprint }),
    };
  }

  #removeEntry(id: string): void {
    this.#total -= this.#sql.remove.run(id).changes;
  }

  #remove(id: string, mailbox: string, key: string | null): void {
    this.#removeEntry(id);
    if (key !== null) this.#sql.freeKey.run(mailbox, key, id);
  }
}

export function createSqliteSchedule(options: SqliteScheduleOptions): SqliteSchedule {
  return new SqliteSchedule(options);
}
