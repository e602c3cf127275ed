import type Database from "better-sqlite3";

/** Every statement the SQLite store runs, prepared once per connection. */

export interface MailboxRow {
  id: number;
  epoch: string;
  last_seq: number;
  trimmed_through: number;
}

export interface MessageRow {
  seq: number;
  id: string;
  time_ms: number;
  expires_at_ms: number;
  json: string;
}

export interface KeyedRow extends MessageRow {
  fingerprint: string | null;
}

export function prepareStatements(db: Database.Database) {
  return {
    mailbox: db.prepare<[string], MailboxRow>(
      "SELECT id, epoch, last_seq, trimmed_through FROM mailboxes WHERE name = ?",
    ),
    createMailbox: db.prepare<[string, string], { id: number }>(
      "INSERT INTO mailboxes (name, epoch, last_seq) VALUES (?, ?, 0) RETURNING id",
    ),
    setLastSeq: db.prepare<[number, number]>("UPDATE mailboxes SET last_seq = ? WHERE id = ?"),
    raiseTrimmed: db.prepare<[number, number]>(
      "UPDATE mailboxes SET trimmed_through = max(trimmed_through, ?) WHERE id = ?",
    ),
    insert: db.prepare<
      [number, number, string, number, number, string, number, string | null, string | null, string | null]
    >(
      `INSERT INTO messages (mailbox_id, seq, id, time_ms, expires_at_ms, json, size, idempotency_key, fingerprint, key)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    // Seqs only grow within a mailbox: the row appended last is the key's newest.
    setLatest: db.prepare<[number, string, number]>(
      `INSERT INTO latest_keys (mailbox_id, key, seq) VALUES (?, ?, ?)
       ON CONFLICT (mailbox_id, key) DO UPDATE SET seq = excluded.seq`,
    ),
    latest: db.prepare<[number, number, number], MessageRow>(
      `SELECT m.seq, m.id, m.time_ms, m.expires_at_ms, m.json FROM latest_keys l
       JOIN messages m ON m.mailbox_id = l.mailbox_id AND m.seq = l.seq
       WHERE l.mailbox_id = ? AND m.expires_at_ms > ? ORDER BY l.seq DESC LIMIT ?`,
    ),
    // INDEXED BY: left to itself the planner walks the mailbox's seq index backwards to skip the sort,
    // reading up to the whole mailbox per keyed append (10x slower appends of scheduled deliveries).
    byKey: db.prepare<[number, string, number], KeyedRow>(
      `SELECT seq, id, time_ms, expires_at_ms, json, fingerprint FROM messages INDEXED BY messages_by_key
       WHERE mailbox_id = ? AND idempotency_key = ? AND expires_at_ms > ? ORDER BY seq DESC LIMIT 1`,
    ),
    after: db.prepare<[number, number, number, number], MessageRow>(
      `SELECT seq, id, time_ms, expires_at_ms, json FROM messages
       WHERE mailbox_id = ? AND seq > ? AND expires_at_ms > ? ORDER BY seq LIMIT ?`,
    ),
    trimToCap: db.prepare<[number, number, number], { seq: number; size: number }>(
      `DELETE FROM messages WHERE pos IN
         (SELECT pos FROM messages WHERE mailbox_id = ? AND seq <= ? ORDER BY seq LIMIT ?)
       RETURNING seq, size`,
    ),
    oldest: db.prepare<[number], { pos: number; mailbox_id: number; seq: number; size: number }>(
      "SELECT pos, mailbox_id, seq, size FROM messages ORDER BY pos LIMIT ?",
    ),
    deleteThrough: db.prepare<[number]>("DELETE FROM messages WHERE pos <= ?"),
    deleteExpired: db.prepare<[number, number], { size: number }>(
      `DELETE FROM messages WHERE pos IN (SELECT pos FROM messages WHERE expires_at_ms <= ? LIMIT ?)
       RETURNING size`,
    ),
    // REPLACE gives a re-remembered key a new pos: it becomes the newest.
    rememberDelivery: db.prepare<[string, string, number]>(
      "REPLACE INTO deliveries (key, answer, expires_at_ms) VALUES (?, ?, ?)",
    ),
    recallDelivery: db.prepare<[string, number], { answer: string }>(
      "SELECT answer FROM deliveries WHERE key = ? AND expires_at_ms > ?",
    ),
    forgetDeliveriesThrough: db.prepare<[number]>("DELETE FROM deliveries WHERE pos <= ?"),
    deleteExpiredDeliveries: db.prepare<[number, number]>(
      "DELETE FROM deliveries WHERE pos IN (SELECT pos FROM deliveries WHERE expires_at_ms <= ? LIMIT ?)",
    ),
    readPosition: db.prepare<[string, string], { epoch: string; seq: number }>(
      "SELECT epoch, seq FROM read_positions WHERE mailbox = ? AND reader = ?",
    ),
    setReadPosition: db.prepare<[string, string, string, number, number]>(
      "REPLACE INTO read_positions (mailbox, reader, epoch, seq, updated_ms) VALUES (?, ?, ?, ?, ?)",
    ),
    countAfter: db.prepare<[number, number, number, number], { n: number }>(
      `SELECT count(*) AS n FROM
         (SELECT 1 FROM messages WHERE mailbox_id = ? AND seq > ? AND expires_at_ms > ? LIMIT ?)`,
    ),
    scanMailboxes: db.prepare<[number, number], { id: number; last_seq: number }>(
      "SELECT id, last_seq FROM mailboxes WHERE id > ? ORDER BY id LIMIT ?",
    ),
    countMailboxes: db.prepare<[], { n: number }>("SELECT count(*) AS n FROM mailboxes"),
    countMessages: db.prepare<[], { n: number; bytes: number }>(
      "SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM messages",
    ),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;
