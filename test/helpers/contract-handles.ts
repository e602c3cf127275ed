import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSqliteStore, type SqliteStore } from "../../src/store/sqlite-store.js";

/** What a contract suite gets from a backend: a store, maybe another node's handle on it, and a cleanup. */
export interface ContractHandles<S> {
  readonly store: S;
  /** Another handle on the same data (another node), where the backend has such a thing. */
  readonly twin?: () => Promise<S>;
  /** Closes what was opened and removes whatever the backend left behind. */
  cleanup(): Promise<void>;
}

/**
 * ContractHandles on a backend shared by handles (nodes): `open` makes one more handle on the same
 * data; `after` removes what they left once all are closed.
 */
export async function sharedHandles<S extends { close(): Promise<void> }>(
  open: () => Promise<S>,
  after: () => Promise<void> = async () => {},
): Promise<ContractHandles<S>> {
  const handles = [await open()];
  return {
    store: handles[0] as S,
    twin: async () => {
      const twin = await open();
      handles.push(twin);
      return twin;
    },
    cleanup: async () => {
      for (const handle of handles) await handle.close();
      await after();
    },
  };
}

/** A SQLite store on `dataDir` (synchronous=normal: tests need no power-loss safety); backends beside it use its `database`. */
export function openTestSqlite(dataDir: string): SqliteStore {
  return createSqliteStore({ dataDir, sync: "normal", maxMessagesPerMailbox: 1000, maxBytes: 1 << 26 });
}

/** ContractHandles on a backend that lives in the SQLite database, in a fresh directory removed on cleanup. */
export async function sqliteHandles<S extends { close(): Promise<void> }>(
  label: string,
  build: (db: SqliteStore["database"]) => S,
): Promise<ContractHandles<S>> {
  const dataDir = mkdtempSync(join(tmpdir(), `herald-${label}-`));
  const messages = openTestSqlite(dataDir);
  const store = build(messages.database);
  return {
    store,
    cleanup: async () => {
      await store.close();
      await messages.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
