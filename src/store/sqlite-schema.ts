import type { Database } from "better-sqlite3";
import { ConfigError } from "../errors.js";

/**
 * Schema migrations, applied in order; PRAGMA user_version records how many
 * have run. Append new steps, never edit a shipped one.
 *
 * `messages.pos` is global insertion order, so the byte budget can drop the
 * oldest messages of the whole store; `size` makes byte accounting exact
 * across restarts.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE mailboxes (
     id INTEGER PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     epoch TEXT NOT NULL,
     last_seq INTEGER NOT NULL,
     trimmed_through INTEGER NOT NULL DEFAULT 0
   );
   CREATE TABLE messages (
     pos INTEGER PRIMARY KEY,
     mailbox_id INTEGER NOT NULL,
     seq INTEGER NOT NULL,
     id TEXT NOT NULL,
     time_ms INTEGER NOT NULL,
     expires_at_ms INTEGER NOT NULL,
     json TEXT NOT NULL,
     size INTEGER NOT NULL,
     idempotency_key TEXT,
     fingerprint TEXT
   );
   CREATE UNIQUE INDEX messages_by_seq ON messages (mailbox_id, seq);
   CREATE INDEX messages_by_expiry ON messages (expires_at_ms);
   CREATE INDEX messages_by_key ON messages (mailbox_id, idempotency_key) WHERE idempotency_key IS NOT NULL;`,
  // What webhook deliveries were answered with; `pos` orders them so the oldest go first beyond the bound.
  `CREATE TABLE deliveries (
     pos INTEGER PRIMARY KEY,
     key TEXT NOT NULL UNIQUE,
     answer TEXT NOT NULL,
     expires_at_ms INTEGER NOT NULL
   );
   CREATE INDEX deliveries_by_expiry ON deliveries (expires_at_ms);`,
  // Each reader's read position per mailbox, by name: it outlives the mailbox's row and its epochs.
  `CREATE TABLE read_positions (
     mailbox TEXT NOT NULL,
     reader TEXT NOT NULL,
     epoch TEXT NOT NULL,
     seq INTEGER NOT NULL,
     updated_ms INTEGER NOT NULL,
     PRIMARY KEY (mailbox, reader)
   ) WITHOUT ROWID;`,
  // Message keys: each message's `key`, and each key's newest seq per mailbox for GET …/latest. A
  // latest_keys row goes with its message (the trigger), never falling back to an older one of the key.
  `ALTER TABLE messages ADD COLUMN key TEXT;
   UPDATE messages SET key = json_extract(json, '$.key') WHERE json_type(json, '$.key') = 'text';
   CREATE TABLE latest_keys (
     mailbox_id INTEGER NOT NULL,
     key TEXT NOT NULL,
     seq INTEGER NOT NULL,
     PRIMARY KEY (mailbox_id, key)
   ) WITHOUT ROWID;
   INSERT INTO latest_keys (mailbox_id, key, seq)
     SELECT mailbox_id, key, max(seq) FROM messages WHERE key IS NOT NULL GROUP BY mailbox_id, key;
   CREATE TRIGGER messages_drop_latest AFTER DELETE ON messages WHEN old.key IS NOT NULL BEGIN
     DELETE FROM latest_keys WHERE mailbox_id = old.mailbox_id AND key = old.key AND seq = old.seq;
   END;`,
  // Scheduled publishes (sqlite-schedule.ts), outside every log until due. `pos` is the order of
  // adding (ties in due time go out in it); `ready_at_ms` is the due time or a claim's lease end.
  // scheduled_keys: idempotency keys of pending entries, and of delivered ones until their message expires.
  `CREATE TABLE scheduled (
     pos INTEGER PRIMARY KEY,
     id TEXT NOT NULL UNIQUE,
     mailbox TEXT NOT NULL,
     due_at_ms INTEGER NOT NULL,
     ready_at_ms INTEGER NOT NULL,
     ttl_ms INTEGER NOT NULL,
     fields_json TEXT NOT NULL,
     idempotency_key TEXT,
     fingerprint TEXT
   );
   CREATE INDEX scheduled_by_ready ON scheduled (ready_at_ms, pos);
   CREATE INDEX scheduled_by_mailbox ON scheduled (mailbox, due_at_ms, pos);
   CREATE TABLE scheduled_keys (
     mailbox TEXT NOT NULL,
     key TEXT NOT NULL,
     id TEXT NOT NULL,
     due_at_ms INTEGER NOT NULL,
     fingerprint TEXT,
     expires_at_ms INTEGER,
     PRIMARY KEY (mailbox, key)
   ) WITHOUT ROWID;
   CREATE INDEX scheduled_keys_by_expiry ON scheduled_keys (expires_at_ms) WHERE expires_at_ms IS NOT NULL;`,
  // Web Push subscriptions (sqlite-push-subscriptions.ts), one per endpoint; the per-owner bound counts
  // an owner's unexpired ones, pruning takes the earliest expired first. push_subscription_mailboxes
  // keeps its rowid: it is the order the mailboxes were given in; its by-mailbox index covers the join.
  `CREATE TABLE push_subscriptions (
     id TEXT PRIMARY KEY,
     endpoint TEXT NOT NULL UNIQUE,
     p256dh TEXT NOT NULL,
     auth TEXT NOT NULL,
     owner TEXT NOT NULL,
     created_at_ms INTEGER NOT NULL,
     updated_at_ms INTEGER NOT NULL,
     expires_at_ms INTEGER NOT NULL
   );
   CREATE INDEX push_subscriptions_by_owner ON push_subscriptions (owner, expires_at_ms);
   CREATE INDEX push_subscriptions_by_expiry ON push_subscriptions (expires_at_ms);
   CREATE TABLE push_subscription_mailboxes (
     subscription_id TEXT NOT NULL,
     mailbox TEXT NOT NULL,
     PRIMARY KEY (subscription_id, mailbox)
   );
   CREATE INDEX push_subscription_mailboxes_by_mailbox ON push_subscription_mailboxes (mailbox, subscription_id);`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** The database was written by a newer Herald: the operator must fix it (exits 2, one line). */
export class SqliteSchemaError extends ConfigError {
  override name = "SqliteSchemaError";
}

/**
 * Brings the database to SCHEMA_VERSION; refuses a database written by a newer
 * Herald. Tests pass a lower `target` to build a database as an older Herald left it.
 */
export function migrate(db: Database, target = SCHEMA_VERSION): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new SqliteSchemaError(
      `database schema version ${current} is newer than this Herald understands (${SCHEMA_VERSION})`,
    );
  }
  const upgrade = db.transaction(() => {
    for (let version = current; version < target; version++) {
      db.exec(MIGRATIONS[version] as string);
      db.pragma(`user_version = ${version + 1}`);
    }
  });
  upgrade.immediate();
}
