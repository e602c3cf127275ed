import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MailboxStore } from "../../src/store/mailbox-store.js";
import { createMemoryStore } from "../../src/store/memory-store.js";
import { createRedisStore } from "../../src/store/redis-store.js";
import { createSqliteStore } from "../../src/store/sqlite-store.js";
import { deleteKeys, type TestRedis, uniquePrefix } from "./redis.js";

/** A fresh store of one backend, and how to remove what it left behind once closed. */
export interface TestBackend {
  open(maxMessagesPerMailbox?: number): Promise<MailboxStore>;
  cleanup(): Promise<void>;
}

export interface BackendKind {
  readonly name: "memory" | "sqlite" | "redis";
  make(): TestBackend;
}

/** Memory, SQLite and (when `redis` is one, not a skip reason) Redis, for suites that run on every store. */
export function storeBackends(redis: TestRedis | { reason: string }, label: string): BackendKind[] {
  const kinds: BackendKind[] = [
    {
      name: "memory",
      make: () => ({
        open: async (cap = 1000) =>
          createMemoryStore({ maxMailboxes: 1000, maxMessagesPerMailbox: cap, maxBytes: 1 << 26 }),
        cleanup: async () => {},
      }),
    },
    {
      name: "sqlite",
      make: () => {
        const dataDir = mkdtempSync(join(tmpdir(), `herald-${label}-`));
        return {
          open: async (cap = 1000) =>
            createSqliteStore({ dataDir, sync: "normal", maxMessagesPerMailbox: cap, maxBytes: 1 << 26 }),
          cleanup: async () => rmSync(dataDir, { recursive: true, force: true }),
        };
      },
    },
  ];
  if ("reason" in redis) return kinds;
  kinds.push({
    name: "redis",
    make: () => {
      const keyPrefix = uniquePrefix(label);
      return {
        open: async (cap = 1000) => {
          const store = createRedisStore({ url: redis.url, keyPrefix, maxMessagesPerMailbox: cap });
          await store.whenReady(5000);
          return store;
        },
        cleanup: () => deleteKeys(redis.url, keyPrefix),
      };
    },
  });
  return kinds;
}
