import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { bearer, makeKey, SECRET, startAuthServer } from "./helpers/auth.js";
import { publish, publishMany, StreamClient } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

const BIN = join(import.meta.dirname, "..", "bin", "herald.js");
/** How long a child process may take to print what a test waits for. */
const WAIT_MS = 15_000;

interface Run {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exited: Promise<number | null>;
}

function start(args: string[], env: Record<string, string> = {}): Run {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, HERALD_URL: "", HERALD_API_KEY: "", HERALD_TOKEN: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const run: Run = {
    child,
    stdout: "",
    stderr: "",
    exited: new Promise((resolve) => child.once("exit", (code) => resolve(code))),
  };
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    run.stdout += chunk;
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    run.stderr += chunk;
  });
  return run;
}

async function herald(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null } & Run> {
  const run = start(args, env);
  const code = await run.exited;
  return Object.assign(run, { code });
}

let server: RunningHerald;
let dir: string;

beforeAll(async () => {
  server = await startTestServer();
  dir = await mkdtemp(join(tmpdir(), "herald-cli-"));
});

afterAll(async () => {
  await server?.shutdown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("herald publish", () => {
  it("publishes text with fields and prints mailbox, seq and id", async () => {
    const run = await herald([
      "publish",
      "room:cli",
      "hello there",
      "--title",
      "bob",
      "--tag",
      "a",
      "--tag",
      "b",
      "--priority",
      "4",
      "--data",
      '{"x":1}',
      "--url",
      server.url,
    ]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^room:cli #1 \S+\n$/);
    const read = (await (await fetch(`${server.url}/v1/mailboxes/room:cli/messages`)).json()) as {
      messages: Record<string, unknown>[];
    };
    expect(read.messages[0]).toMatchObject({
      body: "hello there",
      title: "bob",
      tags: ["a", "b"],
      priority: 4,
      data: { x: 1 },
    });
  });

  it("takes HERALD_URL, prints JSON, and stores a repeated --idempotency-key once", async () => {
    const first = await herald(["publish", "room:key", "once", "--idempotency-key", "k1", "--json"], {
      HERALD_URL: server.url,
    });
    const again = await herald(["publish", "room:key", "once", "--idempotency-key", "k1", "--json"], {
      HERALD_URL: server.url,
    });
    expect(first.code).toBe(0);
    expect(again.code).toBe(0);
    const a = JSON.parse(first.stdout) as { id: string; seq: number; cursor: string };
    expect(JSON.parse(again.stdout)).toMatchObject({ id: a.id, seq: 1 });
    expect(typeof a.cursor).toBe("string");
    const plain = await herald(["publish", "room:key", "once", "--idempotency-key", "k1", "--url", server.url]);
    expect(plain.stdout).toBe(`room:key #1 ${a.id} (already stored under --idempotency-key k1; not stored again)\n`);
  });

  it("publishes a message key with --key, which /latest then answers", async () => {
    for (const value of ["40", "42"]) {
      const run = await herald(["publish", "metrics:cli", value, "--key", "cpu", "--url", server.url]);
      expect(run.code).toBe(0);
    }
    const latest = (await (await fetch(`${server.url}/v1/mailboxes/metrics:cli/latest`)).json()) as {
      messages: Record<string, unknown>[];
    };
    expect(latest.messages).toMatchObject([{ key: "cpu", body: "42" }]);
  });

  it("fails with a clear message and a non-zero exit", async () => {
    const bad = await herald(["publish", "bad name", "x", "--url", server.url]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^herald: .*mailbox.*\(HTTP 400, bad_mailbox\)/i);
    const down = await herald(["publish", "room:x", "y", "--url", "http://127.0.0.1:1"]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^herald: cannot reach Herald at http:\/\/127\.0\.0\.1:1/);
    const usage = await herald(["publish", "room:x", "--data", "{oops", "--url", server.url]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("--data must be JSON");
    const missing = await herald(["publish"]);
    expect(missing.code).toBe(2);
  });
});

describe("herald tail", () => {
  it("prints retained messages as JSON lines and stops after --count", async () => {
    await publishMany(server.url, "feed:tail-json", 3);
    const run = await herald(["tail", "feed:tail-json", "--from-start", "--json", "--count", "2", "--url", server.url]);
    expect(run.code).toBe(0);
    const lines = run.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.map((line) => [line.type, line.body])).toEqual([
      ["message", "m1"],
      ["message", "m2"],
    ]);
    expect(typeof lines[1]?.cursor).toBe("string");
  });

  it("resumes from --cursor-file where the last run stopped, each message once", async () => {
    const file = join(dir, "tail.cursor");
    await publishMany(server.url, "user:tail", 3);
    const first = await herald([
      "tail",
      "user:tail",
      "--cursor-file",
      file,
      "--from-start",
      "--count",
      "3",
      "--url",
      server.url,
    ]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/user:tail #1 m1\n.*user:tail #2 m2\n.*user:tail #3 m3\n$/);
    expect((await readFile(file, "utf8")).trim().length).toBeGreaterThan(0);
    await publishMany(server.url, "user:tail", 2, 4);
    const second = await herald(["tail", "user:tail", "--cursor-file", file, "--count", "2", "--url", server.url]);
    expect(second.code).toBe(0);
    expect(
      second.stdout
        .trim()
        .split("\n")
        .map((line) => line.split(" ").slice(1).join(" ")),
    ).toEqual(["user:tail #4 m4", "user:tail #5 m5"]);
  });

  it("starts after --cursor", async () => {
    const [first] = await publishMany(server.url, "user:cursor", 3);
    const run = await herald([
      "tail",
      "user:cursor",
      "--cursor",
      first?.cursor ?? "",
      "--count",
      "2",
      "--url",
      server.url,
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/#2 m2\n.*#3 m3\n$/);
  });

  it("stops with exit 1 when the server refuses a --cursor, instead of replaying from the start", async () => {
    await publishMany(server.url, "user:bogus", 2);
    const run = await herald(["tail", "user:bogus", "--cursor", "bogus", "--url", server.url]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    const refusals = run.stderr.split("\n").filter((line) => line.includes("bad_cursor"));
    expect(refusals).toEqual([
      expect.stringMatching(/^herald: --cursor "bogus" was refused: .*\(HTTP 400, bad_cursor\)/),
    ]);
  });

  it("stops with exit 1 when the server refuses the cursor in --cursor-file, and leaves the file alone", async () => {
    const file = join(dir, "bogus.cursor");
    await writeFile(file, "not-a-cursor\n");
    await publishMany(server.url, "user:bogus-file", 2);
    const run = await herald([
      "tail",
      "user:bogus-file",
      "--cursor-file",
      file,
      "--transport",
      "websocket",
      "--url",
      server.url,
    ]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toContain(`herald: the cursor in ${file} ("not-a-cursor") was refused`);
    expect(run.stderr).toContain(`delete ${file} to start over`);
    expect(await readFile(file, "utf8")).toBe("not-a-cursor\n");
  });

  it("follows live messages over WebSocket until interrupted, then exits 0", async () => {
    const run = start(["tail", "room:live", "--transport", "websocket", "--url", server.url]);
    await until(
      () => run.stderr.includes("via websocket"),
      () => run.stderr,
      WAIT_MS,
    );
    await publish(server.url, "room:live", { title: "ann", body: "hi" });
    await until(
      () => run.stdout.includes("room:live #1 ann: hi"),
      () => run.stdout + run.stderr,
      WAIT_MS,
    );
    run.child.kill("SIGINT");
    expect(await run.exited).toBe(0);
  });

  it("rejects bad usage and a bad mailbox", async () => {
    const both = await herald(["tail", "a", "--cursor", "x", "--cursor-file", "y"]);
    expect(both.code).toBe(2);
    const bad = await herald(["tail", "bad name", "--url", server.url]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("bad_mailbox");
  });
});

describe("herald token", () => {
  it("explains a server that does not mint tokens", async () => {
    const plain = createServer((_req, res) => {
      res.writeHead(404, { "Content-Type": "application/json" });
      res.end('{"error":{"code":"not_found","message":"No route"}}');
    });
    await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;
    const run = await herald(["token", "--sub", "alice", "--mailbox", "user:alice", "--url", url]);
    plain.close();
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toContain("does not mint tokens");
  });

  it("mints a token with an API key that reads its mailbox and no other", async () => {
    const backend = makeKey("backend", ["user:*"], { tokens: true });
    const authed = await startAuthServer({ auth: { keys: [backend.entry], tokens: { hs256Secret: SECRET } } });
    try {
      await publish(authed.url, "user:carol", { body: "for carol" }, bearer(backend.key));
      const args = ["token", "--sub", "carol", "--mailbox", "user:carol", "--info", '{"name":"Carol"}'];
      const run = await herald([...args, "--url", authed.url], { HERALD_API_KEY: backend.key });
      expect(run.stderr).toMatch(/^herald: token for carol expires /);
      expect(run.code).toBe(0);
      const token = run.stdout.trim();
      expect(run.stdout).toBe(`${token}\n`);
      const own = await fetch(`${authed.url}/v1/mailboxes/user:carol/messages`, { headers: bearer(token) });
      expect(own.status).toBe(200);
      expect(((await own.json()) as { messages: { body: string }[] }).messages.map((m) => m.body)).toEqual([
        "for carol",
      ]);
      const other = await fetch(`${authed.url}/v1/mailboxes/user:dave/messages`, { headers: bearer(token) });
      expect(other.status).toBe(403);
      // The info claim is what presence shows of carol.
      const stream = new StreamClient(`${authed.url}/v1/mailboxes/user:carol/stream?presence=1`, bearer(token));
      await stream.until(() => stream.lines.some((line) => line.includes('"presence"')));
      stream.close();
      expect(stream.objects.find((o) => o.type === "presence")?.members).toEqual([
        expect.objectContaining({ sub: "carol", info: { name: "Carol" } }),
      ]);
    } finally {
      await authed.shutdown();
    }
  });

  it("reports the server's refusal without a key", async () => {
    const authed = await startAuthServer({ auth: { tokens: { hs256Secret: SECRET } } });
    const run = await herald(["token", "--sub", "alice", "--mailbox", "user:alice", "--url", authed.url]);
    await authed.shutdown();
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^herald: .*HTTP 401/);
    // Without auth there is nothing to mint with, and the CLI says so.
    const plain = await herald(["token", "--sub", "alice", "--mailbox", "user:alice", "--url", server.url]);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain("does not mint tokens");
    const usage = await herald(["token", "--sub", "alice"]);
    expect(usage.code).toBe(2);
  });
});

describe("usage mistakes", () => {
  it("answers each in one line of its own, with exit 2", async () => {
    const none = await herald([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("Usage: herald <command>");
    const help = await herald(["--help"]);
    expect(help.code).toBe(0);
    const unknown = await herald(["publish", "room:x", "hi", "--bogus"]);
    expect({ code: unknown.code, stderr: unknown.stderr }).toEqual({
      code: 2,
      stderr: "herald: unknown option --bogus; see --help\n",
    });
    const noValue = await herald(["serve", "--port"]);
    expect({ code: noValue.code, stderr: noValue.stderr }).toEqual({
      code: 2,
      stderr: "herald: --port needs a value; see --help\n",
    });
    const key = await herald(["key", "create"]);
    expect(key.code).toBe(2);
    expect(key.stderr).toMatch(/^herald: key create needs --name NAME and at least one --publish PATTERN/);
  });
});

describe("--help", () => {
  it.each([
    ["serve", "--port"],
    ["key", "--publish"],
    ["hook", "--scheme"],
    ["publish", "--url"],
    ["tail", "--url"],
    ["token", "--url"],
  ])("herald %s --help prints its usage and exits 0", async (command, flag) => {
    const run = await herald([command, "--help"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`Usage: herald ${command}`);
    expect(run.stdout).toContain(flag);
  });
});
