import { afterEach, describe, expect, it } from "vitest";
import { ConfigError } from "../src/errors.js";
import { createRedisStore } from "../src/store/redis-store.js";
import { parseRedisUrl } from "../src/store/redis-url.js";
import { type HeraldChild, runHerald, spawnHerald } from "./helpers/child.js";

/** A port nothing listens on: none of these may get as far as connecting. */
const NOWHERE = "127.0.0.1:1";

const children: HeraldChild[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) {
    child.process.kill("SIGTERM");
    await child.exited;
  }
});

/** `herald serve` refusing its Redis settings: exit 2, one `herald:` line naming the problem, no stack trace. */
async function refused(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const run = await runHerald(["serve", "--port", "0", "--store", "redis", ...args], env);
  expect(run.code).toBe(2);
  expect(run.stdout).not.toContain("listening");
  expect(run.stderr).toMatch(/^herald: \S/);
  expect(run.stderr.trim().split("\n")).toHaveLength(1);
  expect(run.stderr).not.toMatch(/^\s+at /m);
  return run.stderr;
}

describe("herald serve with malformed Redis settings", () => {
  it("refuses a redis-cluster:// URL with no seeds", async () => {
    expect(await refused(["--redis-url", "redis-cluster://"])).toContain("--redis-url lists no seeds");
  });

  it("reads REDIS_URL the same way, and never prints a password", async () => {
    const stderr = await refused([], { REDIS_URL: "redis://alice:s3cret@127.0.0.1:99999" });
    expect(stderr).toContain("--redis-url is not a valid URL");
    expect(stderr).toContain("redis://***@127.0.0.1:99999");
    expect(stderr).not.toContain("s3cret");
  });

  it("refuses a key prefix with a brace, which would take part in hash tags", async () => {
    const stderr = await refused(["--redis-url", `redis://${NOWHERE}`, "--redis-prefix", "herald}"]);
    expect(stderr).toContain("--redis-prefix must not contain { or }");
  });

  it("leaves REDIS_URL alone when another store is chosen", async () => {
    const child = await spawnHerald(["--store", "memory"], { REDIS_URL: "not a url" });
    children.push(child);
    expect(child.output()).toContain("(memory store)");
  });
});

describe("parseRedisUrl", () => {
  it.each([
    ["redis-cluster://", "lists no seeds"],
    ["redis-cluster://127.0.0.1", '"127.0.0.1" is not a host:port'],
    ["redis-cluster://127.0.0.1:7000,", '"" is not a host:port'],
    ["redis-cluster://127.0.0.1:0", '"127.0.0.1:0" is not a host:port'],
    ["redis-cluster://127.0.0.1:7000/2", "a Cluster has no database number"],
    ["redis-cluster://%zz@127.0.0.1:7000", "malformed %-escape"],
    ["redis://", "names no host"],
    ["redis://127.0.0.1:notaport", "is not a valid URL"],
    [`redis://${NOWHERE}/db`, "may end only in a database number"],
    [`http://${NOWHERE}`, "must start with redis://, rediss:// or redis-cluster://"],
    ["127.0.0.1:6379", "must start with redis://, rediss:// or redis-cluster://"],
  ])("refuses %s", (url, message) => {
    expect(() => parseRedisUrl(url)).toThrow(ConfigError);
    expect(() => parseRedisUrl(url)).toThrow(message);
  });

  it("reads a single server's URL as ioredis will, and a Cluster's seeds and credentials", () => {
    for (const url of ["redis://127.0.0.1:6379", "rediss://u:p@host/3", "redis://host?family=6"]) {
      expect(parseRedisUrl(url)).toEqual({ cluster: false, url });
    }
    expect(parseRedisUrl("redis-cluster://u:p:q%40@10.0.0.5:7000,[::1]:7001/")).toEqual({
      cluster: true,
      seeds: [
        { host: "10.0.0.5", port: 7000 },
        { host: "::1", port: 7001 },
      ],
      auth: { username: "u", password: "p:q@" },
    });
    expect(parseRedisUrl("redis-cluster://secret@h:7000")).toMatchObject({ auth: { password: "secret" } });
  });
});

describe("the Redis store refuses what the CLI refuses", () => {
  it.each(["a{b}", "herald}"])("throws a ConfigError for the key prefix %s, before connecting", (keyPrefix) => {
    expect(() => createRedisStore({ url: `redis://${NOWHERE}`, keyPrefix, maxMessagesPerMailbox: 10 })).toThrow(
      ConfigError,
    );
  });

  it.each(["redis-cluster://", "redis://"])("throws a ConfigError for the URL %s, before connecting", (url) => {
    expect(() => createRedisStore({ url, maxMessagesPerMailbox: 10 })).toThrow(ConfigError);
  });
});
