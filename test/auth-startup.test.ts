import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { bearer, publishStatus, SECRET } from "./helpers/auth.js";
import { HERALD_BIN, type HeraldChild, spawnHerald } from "./helpers/child.js";

const children: HeraldChild[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) {
    child.process.kill("SIGTERM");
    await child.exited;
  }
});

/** Runs the CLI to completion. */
function run(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [HERALD_BIN, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk;
    });
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Waits for a line the child prints just after it starts listening. */
async function untilOutput(child: HeraldChild, pattern: RegExp): Promise<void> {
  for (let i = 0; i < 250 && !pattern.test(child.output()); i++) await new Promise((r) => setTimeout(r, 20));
  expect(child.output()).toMatch(pattern);
}

function configFile(document: unknown): string {
  const path = join(mkdtempSync(join(tmpdir(), "herald-auth-")), "herald.json");
  writeFileSync(path, JSON.stringify(document));
  return path;
}

describe("herald serve binding", () => {
  it("refuses to listen on 0.0.0.0 without auth, saying how to configure it", async () => {
    const result = await run(["serve", "--host", "0.0.0.0", "--port", "0"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("refusing to listen on 0.0.0.0 without auth");
    expect(result.stderr).toContain("--insecure");
    expect(result.stderr).toContain('"auth"');
    expect(result.stdout).not.toContain("listening");
  });

  it("starts on 0.0.0.0 with --insecure, with a warning", async () => {
    const child = await spawnHerald(["--host", "0.0.0.0", "--insecure"]);
    children.push(child);
    await untilOutput(child, /WARNING: listening on 0\.0\.0\.0 with no auth/);
  });

  it("starts on 0.0.0.0 with auth configured and states its connection limit against the open-file limit", async () => {
    const child = await spawnHerald([
      "--host",
      "0.0.0.0",
      "--config",
      configFile({ auth: { tokens: { hs256Secret: SECRET } } }),
    ]);
    children.push(child);
    await untilOutput(
      child,
      /Limits: 16000 streams and long-polls at once \(503 beyond\), 17024 sockets, open-file limit \d+; auth on/,
    );
    expect(child.output()).not.toContain("WARNING");
  });

  it("takes auth and limits from HERALD_AUTH and HERALD_LIMITS, but not from both there and the file", async () => {
    const env = {
      HERALD_AUTH: JSON.stringify({ tokens: { hs256SecretEnv: "HERALD_TEST_TOKEN_SECRET" } }),
      HERALD_LIMITS: JSON.stringify({ maxConnections: 500 }),
      HERALD_TEST_TOKEN_SECRET: SECRET,
    };
    const child = await spawnHerald(["--host", "0.0.0.0"], env);
    children.push(child);
    await untilOutput(child, /Limits: 500 streams and long-polls at once .*; auth on/);
    const both = await run(["serve", "--config", configFile({ auth: { tokens: { hs256Secret: SECRET } } })], {
      HERALD_AUTH: env.HERALD_AUTH,
    });
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("HERALD_AUTH is set and the config file has the same section");
  });

  it("refuses a config whose auth section is wrong, naming the field", async () => {
    const result = await run(["serve", "--config", configFile({ auth: { tokens: { hs256Secret: "short" } } })]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("auth.tokens.hs256Secret must be at least 32 characters");
  });
});

describe("herald key create", () => {
  it("prints a key once with --json, whose entry makes a working publisher key", async () => {
    const result = await run([
      "key",
      "create",
      "--name",
      "ci",
      "--publish",
      "user:*",
      "--publish",
      "room:*",
      "--tokens",
      "--json",
    ]);
    expect(result.code).toBe(0);
    const { key, entry } = JSON.parse(result.stdout) as { key: string; entry: Record<string, unknown> };
    expect(entry).toMatchObject({ name: "ci", publish: ["user:*", "room:*"], tokens: true });
    expect(entry.hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(JSON.stringify(entry)).not.toContain(key);

    const child = await spawnHerald([
      "--config",
      configFile({ auth: { keys: [entry], tokens: { hs256Secret: SECRET } } }),
    ]);
    children.push(child);
    expect((await publishStatus(child.url, "user:1", bearer(key))).status).toBe(201);
    expect((await publishStatus(child.url, "other:1", bearer(key))).status).toBe(403);
    const minted = await fetch(`${child.url}/v1/tokens`, {
      method: "POST",
      headers: { "content-type": "application/json", ...bearer(key) },
      body: JSON.stringify({ sub: "u1", mailboxes: ["user:1"] }),
    });
    expect(minted.status).toBe(201);
  });

  it("prints the key and the entry in text form, and refuses bad usage", async () => {
    const text = await run(["key", "create", "--name", "ops", "--publish", "alerts:*"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/hk_[\w-]{43}/);
    expect(text.stdout).toContain('"publish":["alerts:*"]');
    expect((await run(["key", "create", "--name", "x"])).code).toBe(2);
    expect((await run(["key", "create", "--name", "x", "--publish", "bad pattern!"])).code).toBe(2);
  });
});
