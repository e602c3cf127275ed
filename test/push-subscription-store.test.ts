import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createMemoryPushSubscriptions } from "../src/store/memory-push-subscriptions.js";
import { createSqlitePushSubscriptions } from "../src/store/sqlite-push-subscriptions.js";
import { openTestSqlite, sqliteHandles } from "./helpers/contract-handles.js";
import {
  describePushSubscriptionContract,
  pushDraft,
  pushEndpoint,
  ROOMY,
  saved,
  targetOf,
} from "./push-subscription-contract.js";

describePushSubscriptionContract("memory", async () => {
  const store = createMemoryPushSubscriptions();
  return { store, cleanup: () => store.close() };
});

describePushSubscriptionContract("sqlite", () => sqliteHandles("push", (db) => createSqlitePushSubscriptions({ db })));

describe("sqlite push subscriptions across a restart", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("keeps every subscription, its mailboxes in order, its expiry, and its owner's count", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "herald-push-"));
    dirs.push(dataDir);
    const first = openTestSqlite(dataDir);
    const before = createSqlitePushSubscriptions({ db: first.database });
    const t = Date.now();
    const kept = saved(await before.save(pushDraft(pushEndpoint(), "sub:alice", ["z", "a", "m"]), ROOMY, t));
    const other = saved(await before.save(pushDraft(pushEndpoint(), "sub:bob", ["a"], t + 1000), ROOMY, t));
    await before.close();
    await first.close();

    const second = openTestSqlite(dataDir);
    const after = createSqlitePushSubscriptions({ db: second.database });
    try {
      expect(await after.count()).toBe(2);
      expect(await after.get(kept.id)).toEqual(kept);
      expect((await after.targets("a", t)).map((s) => s.id).sort()).toEqual([kept.id, other.id].sort());
      expect(await after.targets("a", t + 1000)).toEqual([targetOf(kept)]);
      expect(await after.get(other.id)).toEqual(other);
      const bounds = { maxPerOwner: 1, maxTotal: 10 };
      expect(await after.save(pushDraft(pushEndpoint(), "sub:alice", ["a"]), bounds, t)).toEqual({
        status: "full",
        bound: "owner",
      });
      expect((await after.save(pushDraft(kept.endpoint, "sub:alice", ["a"]), bounds, t + 1)).status).toBe("updated");
    } finally {
      await after.close();
      await second.close();
    }
  });
});
