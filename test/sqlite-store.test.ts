import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import type { MessageDraft, StoredMessage } from "../src/store/mailbox-store.js";
import { migrate, SCHEMA_VERSION, SqliteSchemaError } from "../src/store/sqlite-schema.js";
import {
  createSqliteStore,
  SQLITE_FILE_NAME,
  SqliteStoreError,
  type SqliteStoreOptions,
} from "../src/store/sqlite-store.js";
import { storedMessage } from "../src/store/stored-message.js";
import { runHerald, spawnHerald } from "./helpers/child.js";
import { publishMany, type WireMessage } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";
import { describeStoreContract, draft } from "./store-contract.js";

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "herald-sqlite-"));
}

/** The schema version before message keys (the `key` column and latest_keys). */
const BEFORE_MESSAGE_KEYS = 3;

/** A database in `dir` as schema `version` left it, holding `drafts` in mailbox "a". */
function databaseAt(dir: string, version: number, drafts: readonly MessageDraft[]): StoredMessage[] {
  const db = new Database(join(dir, SQLITE_FILE_NAME));
  migrate(db, version);
  const { id } = db
    .prepare("INSERT INTO mailboxes (name, epoch, last_seq) VALUES ('a', 'e1', ?) RETURNING id")
    .get(drafts.length) as { id: number };
  const insert = db.prepare(
    "INSERT INTO messages (mailbox_id, seq, id, time_ms, expires_at_ms, json, size) VALUES (?, ?, ?, ?, ?, ?, ?)",
  );
  const messages = drafts.map((d, i) => storedMessage("a", "e1", i + 1, d));
  for (const m of messages) insert.run(id, m.seq, m.id, m.timeMs, m.expiresAtMs, m.json, m.json.length);
  db.close();
  return messages;
}

describeStoreContract("sqlite", async (options) => {
  const dataDir = tempDir();
  const store = createSqliteStore({ dataDir, sync: "normal", sweepIntervalMs: 50, ...options });
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
});

describe("sqlite store specifics", () => {
  const dirs: string[] = [];
  const opened: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const open = (dataDir: string, options: Partial<SqliteStoreOptions> = {}) => {
    const store = createSqliteStore({
      dataDir,
      sync: "full",
      maxMessagesPerMailbox: 1000,
      maxBytes: 1 << 26,
      ...options,
    });
    opened.push(store);
    return store;
  };
  const newDir = () => {
    const dir = tempDir();
    dirs.push(dir);
    return dir;
  };

  it("keeps epochs, seqs, trimming state and idempotency keys across a reopen", async () => {
    const dir = newDir();
    const first = open(dir, { maxMessagesPerMailbox: 3 });
    const results = await first.append(
      [1, 2, 3, 4, 5].map((n) => ({ mailbox: "a", draft: draft({ n }, { key: `k${n}`, fingerprint: `f${n}` }) })),
    );
    const epoch = results[0]?.message.epoch as string;
    await expect.poll(async () => (await first.head("a"))?.trimmedThrough).toBe(2);
    const before = first.stats();
    await first.close();

    const second = open(dir, { maxMessagesPerMailbox: 3 });
    expect(second.stats()).toEqual(before);
    expect(await second.head("a")).toEqual({ epoch, lastSeq: 5, trimmedThrough: 2 });
    const read = await second.read("a", { epoch, seq: 3 }, 100);
    expect(read.messages).toEqual(results.slice(3).map((r) => r.message));
    const [dup] = await second.append([{ mailbox: "a", draft: draft({ n: 5 }, { key: "k5", fingerprint: "f5" }) }]);
    expect(dup).toEqual({ status: "duplicate", message: results[4]?.message });
    const [conflict] = await second.append([{ mailbox: "a", draft: draft({ n: 0 }, { key: "k4", fingerprint: "x" }) }]);
    expect(conflict?.status).toBe("conflict");
    const [next] = await second.append([{ mailbox: "a", draft: draft({ n: 6 }) }]);
    expect(next?.message).toMatchObject({ epoch, seq: 6 });
  });

  it("applies a lowered cap to existing mailboxes after a reopen", async () => {
    const dir = newDir();
    const first = open(dir);
    await first.append(Array.from({ length: 50 }, (_, n) => ({ mailbox: "a", draft: draft({ n }) })));
    await first.close();
    const second = open(dir, { maxMessagesPerMailbox: 10 });
    await expect.poll(async () => (await second.head("a"))?.trimmedThrough).toBe(40);
    const read = await second.read("a", { epoch: "", seq: 0 }, 100);
    expect(read.messages.map((m) => m.seq)).toEqual(Array.from({ length: 10 }, (_, i) => 41 + i));
    expect(second.stats().messages).toBe(10);
  });

  it("commits appends arriving in one tick in one transaction, and answers only once committed", async () => {
    const store = open(newDir());
    await store.append([{ mailbox: "warm", draft: draft({}) }]);
    const commitsBefore = store.commits;
    const commitsWhenAnswered: number[] = [];
    const pending = Array.from({ length: 50 }, (_, n) =>
      store.append([{ mailbox: `m${n % 5}`, draft: draft({ n }) }]).then((results) => {
        commitsWhenAnswered.push(store.commits);
        return results;
      }),
    );
    expect(store.commits).toBe(commitsBefore);
    const results = await Promise.all(pending);
    expect(commitsWhenAnswered).toEqual(Array(50).fill(commitsBefore + 1));
    expect(results.flat().every((r) => r.status === "stored")).toBe(true);
    expect(store.stats().messages).toBe(51);
  });

  it("rolls back only the conflicting call of a group commit", async () => {
    const store = open(newDir());
    const [original] = await store.append([{ mailbox: "a", draft: draft({ n: 0 }, { key: "k", fingerprint: "f" }) }]);
    const [before, conflicting, after] = await Promise.all([
      store.append([{ mailbox: "a", draft: draft({ n: 1 }) }]),
      store.append([
        { mailbox: "b", draft: draft({ n: 2 }) },
        { mailbox: "a", draft: draft({ n: 3 }, { key: "k", fingerprint: "other" }) },
      ]),
      store.append([{ mailbox: "a", draft: draft({ n: 4 }) }]),
    ]);
    expect(conflicting).toEqual([{ status: "conflict", message: original?.message }]);
    expect([before?.[0]?.message.seq, after?.[0]?.message.seq]).toEqual([2, 3]);
    expect(await store.head("b")).toBeUndefined();
    expect(store.stats()).toMatchObject({ mailboxes: 1, messages: 3 });
  });

  it("refuses a second store on a data directory in use", async () => {
    const dir = newDir();
    const first = open(dir);
    await first.append([{ mailbox: "a", draft: draft({}) }]);
    expect(() => open(dir)).toThrow(SqliteStoreError);
    await first.close();
    expect((await open(dir).head("a"))?.lastSeq).toBe(1);
  });

  it("records its schema version and refuses a database from a newer Herald", async () => {
    const dir = newDir();
    await open(dir).close();
    const db = new Database(join(dir, SQLITE_FILE_NAME));
    expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => open(dir)).toThrow(SqliteSchemaError);
  });

  it("keeps remembered deliveries across a reopen, at most maxDeliveries, and deletes expired rows", async () => {
    const dir = newDir();
    let now = 1_000_000;
    const options = { maxDeliveries: 3, sweepIntervalMs: 20, now: () => now };
    let current = open(dir, options);
    for (const key of ["a", "b", "c", "d"])
      await current.rememberDelivery(`hook h id ${key}`, key.toUpperCase(), 60_000);
    // Remembering "b" again makes it the newest; "a", then "c", are the oldest.
    await current.rememberDelivery("hook h id b", "B2", 60_000);
    await current.rememberDelivery("brief", "gone", 1000);
    await current.close();
    current = open(dir, options);
    expect(await current.recallDelivery("hook h id a")).toBeUndefined();
    expect(await current.recallDelivery("hook h id c")).toBeUndefined();
    expect(await current.recallDelivery("hook h id b")).toBe("B2");
    expect(await current.recallDelivery("hook h id d")).toBe("D");
    expect(await current.recallDelivery("brief")).toBe("gone");
    now += 1000;
    expect(await current.recallDelivery("brief")).toBeUndefined();
    // The store holds the file exclusively: look at the rows between openings, until a sweep has run.
    await expect
      .poll(async () => {
        await current.close();
        const db = new Database(join(dir, SQLITE_FILE_NAME), { readonly: true });
        const keys = db.prepare("SELECT key FROM deliveries ORDER BY key").pluck().all();
        db.close();
        current = open(dir, options);
        return keys;
      })
      .toEqual(["hook h id b", "hook h id d"]);
  });

  it("adds the deliveries and read-position tables to a database from before them, keeping the messages", async () => {
    const dir = newDir();
    const stored = databaseAt(dir, 1, [draft({ n: 1 })]);
    const second = open(dir);
    expect((await second.read("a", { epoch: "", seq: 0 }, 10)).messages).toEqual(stored);
    await second.rememberDelivery("k", "v", 60_000);
    expect(await second.recallDelivery("k")).toBe("v");
    expect((await second.markRead("a", "alice", { seq: 1 })).status).toBe("moved");
    await second.close();
    const third = open(dir);
    expect((await third.readState("a", "alice")).position.seq).toBe(1);
  });

  it("gives the messages of a database from before message keys their keys, for latest", async () => {
    const dir = newDir();
    const now = Date.now();
    const brief = { ...draft({ key: "k", n: 3 }), expiresAtMs: now + 1 };
    const stored = databaseAt(dir, BEFORE_MESSAGE_KEYS, [
      draft({ key: "k", n: 1 }),
      draft({ key: "j", n: 2, data: { key: "nested" } }),
      brief,
      draft({ n: 4, data: { key: "nested" } }),
      draft({ key: "m", n: 5 }),
    ]);
    const store = open(dir);
    // k's newest (seq 3) expired: k has no value, though seq 1 is retained.
    expect((await store.latest("a", 10)).messages).toEqual([stored[1], stored[4]]);
    const [next] = await store.append([{ mailbox: "a", draft: draft({ key: "k", n: 6 }) }]);
    expect((await store.latest("a", 10)).messages).toEqual([stored[1], stored[4], next?.message]);
    await store.close();
    const db = new Database(join(dir, SQLITE_FILE_NAME), { readonly: true });
    expect(db.prepare("SELECT key FROM messages ORDER BY seq").pluck().all()).toEqual(["k", "j", "k", null, "m", "k"]);
    db.close();
  });

  it("keeps each key's latest value across a reopen", async () => {
    const dir = newDir();
    const first = open(dir);
    const results = await first.append(["a", "b", "a"].map((key, n) => ({ mailbox: "m", draft: draft({ key, n }) })));
    await first.close();
    const latest = await open(dir).latest("m", 10);
    expect(latest.messages).toEqual([results[1]?.message, results[2]?.message]);
    expect(latest.log?.lastSeq).toBe(3);
  });

  it("answers appends queued before close, and rejects those after", async () => {
    const store = open(newDir());
    const pending = store.append([{ mailbox: "a", draft: draft({ n: 1 }) }]);
    await store.close();
    expect((await pending)[0]?.status).toBe("stored");
    await expect(store.append([{ mailbox: "a", draft: draft({ n: 2 }) }])).rejects.toThrow();
  });
});

describe("sqlite store behind the HTTP server", () => {
  it("resumes an old cursor after a restart with no gap and exactly the later messages", async () => {
    const dataDir = tempDir();
    const storeOn = () => createSqliteStore({ dataDir, sync: "full", maxMessagesPerMailbox: 1000, maxBytes: 1 << 26 });
    try {
      let herald = await startTestServer({ customStore: storeOn() });
      await publishMany(herald.url, "news", 5);
      const first = await readJson(`${herald.url}/v1/mailboxes/news/messages?limit=3`);
      expect(first.messages.map((m) => m.body)).toEqual(["m1", "m2", "m3"]);
      await herald.shutdown();

      herald = await startTestServer({ customStore: storeOn() });
      try {
        await publishMany(herald.url, "news", 2, 6);
        const resumed = await readJson(`${herald.url}/v1/mailboxes/news/messages?cursor=${first.cursor}`);
        expect(resumed.gap).toBe(false);
        expect(resumed.messages.map((m) => [m.seq, m.body])).toEqual([
          [4, "m4"],
          [5, "m5"],
          [6, "m6"],
          [7, "m7"],
        ]);
        const later = await readJson(`${herald.url}/v1/mailboxes/news/messages?cursor=${resumed.cursor}`);
        expect(later).toMatchObject({ messages: [], gap: false });
      } finally {
        await herald.shutdown();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

async function readJson(url: string): Promise<{ messages: WireMessage[]; cursor: string; gap: boolean }> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  return (await response.json()) as { messages: WireMessage[]; cursor: string; gap: boolean };
}

describe("herald serve on a SQLite directory another Herald holds", () => {
  it("exits 2 with one line that names the directory, no stack trace", async () => {
    const dataDir = tempDir();
    const first = await spawnHerald(["--store", "sqlite", "--data-dir", dataDir]);
    try {
      const second = await runHerald(["serve", "--port", "0", "--store", "sqlite", "--data-dir", dataDir]);
      expect(second.code).toBe(2);
      expect(second.stderr).toBe(`herald: ${dataDir} is in use by another Herald process\n`);
      // The first one's banner says where its messages live; its shutdown ends with a line of its own.
      expect(first.output()).toContain(`  store  sqlite, ${join(dataDir, SQLITE_FILE_NAME)} (sync full)\n`);
      expect(first.output()).toMatch(
        / {2}demos {2}http:\/\/127\.0\.0\.1:\d+\/\n {2}store .*\n {2}auth {3}off \(loopback only\)\n {2}hooks {2}none\n/,
      );
      first.process.kill("SIGTERM");
      expect(await first.exited).toBe(0);
      expect(first.output()).toMatch(/Herald stopped: 0 open connections ended, publishes finished; exit 0\n$/);
    } finally {
      first.process.kill("SIGTERM");
      await first.exited;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
