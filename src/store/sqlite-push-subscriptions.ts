import type Database from "better-sqlite3";
import { nanoid } from "nanoid";
import type {
  PushSaveResult,
  PushSubscription,
  PushSubscriptionBounds,
  PushSubscriptionDraft,
  PushSubscriptionStore,
  PushTarget,
} from "./push-subscription-store.js";
import { orUnavailable, storeClosed } from "./store-unavailable.js";

export interface SqlitePushSubscriptionsOptions {
  /** The SQLite store's database (SqliteStore.database); its migrations made the tables. */
  readonly db: Database.Database;
}

interface SubscriptionRow {
  id: string;
  endpoint: string;
  p256dh: string;
  auth: string;
  owner: string;
  created_at_ms: number;
  updated_at_ms: number;
  expires_at_ms: number;
  /** A JSON array, in the order the mailboxes were given. */
  mailboxes: string;
}

/** A target's id, endpoint, p256dh and auth, as an array: raw rows spare building an object per row. */
type TargetRow = [string, string, string, string];

const SELECT = `SELECT s.id, s.endpoint, s.p256dh, s.auth, s.owner, s.created_at_ms, s.updated_at_ms, s.expires_at_ms,
  (SELECT json_group_array(m.mailbox ORDER BY m.rowid) FROM push_subscription_mailboxes m
    WHERE m.subscription_id = s.id) AS mailboxes`;

function prepare(db: Database.Database) {
  return {
    get: db.prepare<[string], SubscriptionRow>(`${SELECT} FROM push_subscriptions s WHERE s.id = ?`),
    byEndpoint: db.prepare<[string], SubscriptionRow>(`${SELECT} FROM push_subscriptions s WHERE s.endpoint = ?`),
    // One join on covering and primary key indexes, no per-row subquery: publishing reads it for every
    // subscription of the mailbox. Most of its time is building the answer, hence raw rows.
    targets: db
      .prepare<[string, number], TargetRow>(
        `SELECT s.id, s.endpoint, s.p256dh, s.auth FROM push_subscription_mailboxes f
         JOIN push_subscriptions s ON s.id = f.subscription_id
         WHERE f.mailbox = ? AND s.expires_at_ms > ?`,
      )
      .raw(true),
    expired: db.prepare<[number, number], { id: string }>(
      "SELECT id FROM push_subscriptions WHERE expires_at_ms <= ? ORDER BY expires_at_ms LIMIT ?",
    ),
    insert: db.prepare<[string, string, string, string, string, number, number, number]>(
      `INSERT INTO push_subscriptions (id, endpoint, p256dh, auth, owner, created_at_ms, updated_at_ms, expires_at_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    update: db.prepare<[string, string, number, number, string]>(
      "UPDATE push_subscriptions SET p256dh = ?, auth = ?, updated_at_ms = ?, expires_at_ms = ? WHERE id = ?",
    ),
    remove: db.prepare<[string]>("DELETE FROM push_subscriptions WHERE id = ?"),
    addMailbox: db.prepare<[string, string]>(
      "INSERT INTO push_subscription_mailboxes (subscription_id, mailbox) VALUES (?, ?)",
    ),
    clearMailboxes: db.prepare<[string]>("DELETE FROM push_subscription_mailboxes WHERE subscription_id = ?"),
    countOwner: db.prepare<[string, number], { n: number }>(
      "SELECT count(*) AS n FROM push_subscriptions WHERE owner = ? AND expires_at_ms > ?",
    ),
    countAll: db.prepare<[], { n: number }>("SELECT count(*) AS n FROM push_subscriptions"),
  };
}

function toSubscription(row: SubscriptionRow): PushSubscription {
  return {
    id: row.id,
    endpoint: row.endpoint,
    keys: { p256dh: row.p256dh, auth: row.auth },
    mailboxes: JSON.parse(row.mailboxes) as string[],
    owner: row.owner,
    expiresAtMs: row.expires_at_ms,
    createdAtMs: row.created_at_ms,
    updatedAtMs: row.updated_at_ms,
  };
}

/**
 * Push subscriptions in the SQLite store's database, beside its messages: they survive a restart.
 * Every call is synchronous on the store's one connection, a save one transaction.
 */
export class SqlitePushSubscriptions implements PushSubscriptionStore {
  readonly #db: Database.Database;
  readonly #sql: ReturnType<typeof prepare>;
  #closed = false;

  constructor(options: SqlitePushSubscriptionsOptions) {
    this.#db = options.db;
    this.#sql = prepare(this.#db);
  }

  save(draft: PushSubscriptionDraft, bounds: PushSubscriptionBounds, nowMs: number): Promise<PushSaveResult> {
    return this.#attempt(() => this.#db.transaction(() => this.#save(draft, bounds, nowMs))());
  }

  #save(draft: PushSubscriptionDraft, bounds: PushSubscriptionBounds, nowMs: number): PushSaveResult {
    const { endpoint, keys, owner } = draft;
    const row = this.#sql.byEndpoint.get(endpoint);
    const ownerFull = () => (this.#sql.countOwner.get(owner, nowMs) as { n: number }).n >= bounds.maxPerOwner;
    if (row?.owner === owner) {
      if (row.expires_at_ms <= nowMs && ownerFull()) return { status: "full", bound: "owner" };
      this.#sql.update.run(keys.p256dh, keys.auth, nowMs, draft.expiresAtMs, row.id);
      this.#sql.clearMailboxes.run(row.id);
      this.#addMailboxes(row.id, draft.mailboxes);
      return { status: "updated", subscription: this.#read(row.id) };
    }
    if (ownerFull()) return { status: "full", bound: "owner" };
    const others = (this.#sql.countAll.get() as { n: number }).n - (row ? 1 : 0);
    if (others >= bounds.maxTotal) return { status: "full", bound: "total" };
    if (row) this.#remove(row.id);
    const id = nanoid();
    this.#sql.insert.run(id, endpoint, keys.p256dh, keys.auth, owner, nowMs, nowMs, draft.expiresAtMs);
    this.#addMailboxes(id, draft.mailboxes);
    return { status: "created", subscription: this.#read(id), replaced: row !== undefined };
  }

  get(id: string): Promise<PushSubscription | undefined> {
    return this.#attempt(() => {
      const row = this.#sql.get.get(id);
      return row && toSubscription(row);
    });
  }

  remove(id: string, endpoint?: string): Promise<boolean> {
    return this.#attempt(() =>
      this.#db.transaction(() => {
        const row = this.#sql.get.get(id);
        if (!row || (endpoint !== undefined && row.endpoint !== endpoint)) return false;
        this.#remove(id);
        return true;
      })(),
    );
  }

  targets(mailbox: string, nowMs: number): Promise<PushTarget[]> {
    return this.#attempt(() =>
      this.#sql.targets
        .all(mailbox, nowMs)
        .map(([id, endpoint, p256dh, auth]) => ({ id, endpoint, keys: { p256dh, auth } })),
    );
  }

  prune(nowMs: number, max: number): Promise<number> {
    if (max <= 0) return this.#attempt(() => 0);
    return this.#attempt(() =>
      this.#db.transaction(() => {
        const expired = this.#sql.expired.all(nowMs, max);
        for (const { id } of expired) this.#remove(id);
        return expired.length;
      })(),
    );
  }

  count(): Promise<number> {
    return this.#attempt(() => (this.#sql.countAll.get() as { n: number }).n);
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

  #read(id: string): PushSubscription {
    return toSubscription(this.#sql.get.get(id) as SubscriptionRow);
  }

  #addMailboxes(id: string, mailboxes: readonly string[]): void {
    for (const mailbox of mailboxes) this.#sql.addMailbox.run(id, mailbox);
  }

  #remove(id: string): void {
    this.#sql.clearMailboxes.run(id);
    this.#sql.remove.run(id);
  }
}

export function createSqlitePushSubscriptions(options: SqlitePushSubscriptionsOptions): SqlitePushSubscriptions {
  return new SqlitePushSubscriptions(options);
}
