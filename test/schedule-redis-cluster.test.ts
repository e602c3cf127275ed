import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe } from "vitest";
import { createRedisSchedule, type RedisSchedule } from "../src/store/redis-schedule.js";
import { hasRedisCli, hasRedisServerBinary, skipBecause, startRedisCluster, uniquePrefix } from "./helpers/redis.js";
import { describeScheduleContract, sharedSchedule } from "./schedule-contract.js";

/** The Redis schedule on a real (local, three-master) Redis Cluster: every script touches one slot. */
const canRun = hasRedisServerBinary() && hasRedisCli();
if (!canRun)
  console.warn(`Redis Cluster schedule tests skipped: ${skipBecause("redis-server or redis-cli missing").reason}`);

const dir = canRun ? await mkdtemp(join(tmpdir(), "herald-schedule-cluster-")) : "";
const cluster = canRun ? await startRedisCluster(dir) : undefined;
afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.runIf(canRun)("Redis schedule on a Redis Cluster", () => {
  const url = cluster?.url as string;
  const open = async (prefix: string): Promise<RedisSchedule> => {
    const store = createRedisSchedule({ url, keyPrefix: prefix });
    await store.whenReady(10_000);
    return store;
  };
  // The cluster is thrown away after the run, keys and all.
  describeScheduleContract("redis cluster", async () => {
    const prefix = uniquePrefix("schedule-cluster");
    return sharedSchedule(() => open(prefix));
  });
});
