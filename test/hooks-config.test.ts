import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfigFile, parseFileConfig } from "../src/config-file.js";
import { ConfigError } from "../src/errors.js";
import { deliver, githubHeaders } from "./helpers/hooks.js";

const dir = mkdtempSync(join(tmpdir(), "herald-hooks-config-"));
const SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const good = (verify: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  hooks: [{ id: "h", mailbox: "m", verify, ...extra }],
});

function errorOf(document: unknown, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseFileConfig(document, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("config file: hooks section", () => {
  it("accepts every scheme, secret lists and secretEnv", () => {
    const config = parseFileConfig(
      {
        hooks: [
          { id: "gh", mailbox: "user:alice", verify: { scheme: "github", secret: ["a", "b"] }, title: "{{x.y}}" },
          { id: "pay", mailbox: "billing", verify: { scheme: "stripe", secretEnv: "S", toleranceSeconds: 60 } },
          { id: "svc", mailbox: "ops:{{data.team}}", verify: { scheme: "standard-webhooks", secret: SW_SECRET } },
          { id: "plain", mailbox: "ops", verify: { scheme: "hmac-sha256", secret: "p", header: "X-Signature" } },
        ],
      },
      { S: "whsec_abc" },
    );
    expect(config.hooks.map((hook) => [hook.id, hook.scheme, hook.keys.length, hook.toleranceSeconds])).toEqual([
      ["gh", "github", 2, 300],
      ["pay", "stripe", 1, 60],
      ["svc", "standard-webhooks", 1, 300],
      ["plain", "hmac-sha256", 1, 300],
    ]);
    expect(config.hooks[1]?.keys[0]?.toString()).toBe("whsec_abc");
  });

  it("names the invalid field", () => {
    expect(errorOf({ hook: [] })).toMatch(/"hook" is not a known section/);
    expect(errorOf({ hooks: {} })).toMatch(/^hooks must be a list/);
    expect(errorOf(good({ scheme: "gitlab", secret: "s" }))).toMatch(/^hooks\[0\]\.verify\.scheme must be one of/);
    expect(errorOf(good({ scheme: "github" }))).toMatch(/^hooks\[0\]\.verify needs exactly one of "secret"/);
    expect(errorOf(good({ scheme: "github", secret: "s", secretEnv: "X" }))).toMatch(/exactly one/);
    expect(errorOf(good({ scheme: "github", secret: ["ok", ""] }))).toMatch(/^hooks\[0\]\.verify\.secret\[1\] must be/);
    expect(errorOf(good({ scheme: "github", secretEnv: "NOPE" }))).toMatch(
      /^hooks\[0\]\.verify\.secretEnv names NOPE, which is not set/,
    );
    expect(errorOf(good({ scheme: "standard-webhooks", secret: "whsec_not base64!" }))).toMatch(
      /^hooks\[0\]\.verify\.secret must be "whsec_" followed by base64/,
    );
    expect(errorOf(good({ scheme: "github", secret: "s", toleranceSeconds: 5 }))).toMatch(
      /^hooks\[0\]\.verify\.toleranceSeconds is not a known field/,
    );
    expect(errorOf(good({ scheme: "stripe", secret: "s", toleranceSeconds: 0 }))).toMatch(
      /^hooks\[0\]\.verify\.toleranceSeconds must be an integer/,
    );
    expect(errorOf(good({ scheme: "github", secret: "s" }, { titel: "x" }))).toMatch(
      /^hooks\[0\]\.titel is not a known field/,
    );
    expect(errorOf(good({ scheme: "github", secret: "s" }, { title: "{{a + b}}" }))).toMatch(/^hooks\[0\]\.title /);
    expect(errorOf(good({ scheme: "github", secret: "s" }, { mailbox: "no spaces" }))).toMatch(
      /^hooks\[0\]\.mailbox must be a mailbox name/,
    );
    expect(errorOf(good({ scheme: "github", secret: "s" }, { mailbox: "bad/{{x}}" }))).toMatch(
      /^hooks\[0\]\.mailbox must be/,
    );
    expect(errorOf(good({ scheme: "github", secret: "s" }, { priority: 9 }))).toMatch(/^hooks\[0\]\.priority/);
    expect(errorOf({ hooks: [{ mailbox: "m", verify: { scheme: "github", secret: "s" } }] })).toMatch(
      /^hooks\[0\]\.id must be/,
    );
    expect(errorOf({ hooks: [{ id: "h", mailbox: "m" }] })).toMatch(/^hooks\[0\]\.verify is required/);
    const twice = { id: "h", mailbox: "m", verify: { scheme: "github", secret: "s" } };
    expect(errorOf({ hooks: [twice, twice] })).toMatch(/^hooks\[1\]\.id "h" is used by an earlier hook/);
  });

  it("never echoes a secret in an error", () => {
    const message = errorOf(good({ scheme: "standard-webhooks", secret: "whsec_SUPER$SECRET" }));
    expect(message).not.toContain("SUPER");
  });

  it("reports unreadable and invalid JSON files with their path", () => {
    const broken = join(dir, "broken.json");
    writeFileSync(broken, '{"hooks": [');
    expect(() => loadConfigFile(broken, {})).toThrow(/config file .*broken\.json is not valid JSON/);
    expect(() => loadConfigFile(join(dir, "absent.json"), {})).toThrow(/absent\.json cannot be read/);
    const invalid = join(dir, "invalid.json");
    writeFileSync(invalid, JSON.stringify(good({ scheme: "github", secret: "" })));
    expect(() => loadConfigFile(invalid, {})).toThrow(/invalid\.json: hooks\[0\]\.verify\.secret must be/);
  });
});

// `herald serve --config` as a user runs it: the file is loaded at start-up and its hooks are served.
const children: ReturnType<typeof spawn>[] = [];
afterAll(() => {
  for (const child of children) child.kill("SIGTERM");
});

function runHerald(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, ["bin/herald.js", ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

describe("herald serve --config", () => {
  it("refuses to start on an invalid hook, naming the field, exit code 2", async () => {
    const path = join(dir, "bad.json");
    writeFileSync(path, JSON.stringify(good({ scheme: "github", secretEnv: "HERALD_TEST_UNSET_SECRET" })));
    const run = runHerald(["serve", "--port", "0", "--config", path]);
    expect(await run.exited).toBe(2);
    expect(run.output().stderr).toContain("hooks[0].verify.secretEnv names HERALD_TEST_UNSET_SECRET, which is not set");
  });

  it("serves the file's hooks, reading the path from HERALD_CONFIG", async () => {
    const path = join(dir, "good.json");
    writeFileSync(path, JSON.stringify(good({ scheme: "github", secretEnv: "HERALD_TEST_GH_SECRET" })));
    const run = runHerald(["serve", "--port", "0"], { HERALD_CONFIG: path, HERALD_TEST_GH_SECRET: "from-env" });
    const deadline = Date.now() + 20_000;
    let url: string | undefined;
    while (url === undefined && Date.now() < deadline) {
      url = /listening on (http:\/\/\S+)/.exec(run.output().stdout)?.[1];
      if (url === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(url, run.output().stderr).toBeDefined();
    const body = '{"action":"ping"}';
    const answer = await deliver(url as string, "h", body, githubHeaders("from-env", body, "cli-1"));
    expect(answer.status).toBe(202);
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
  });
});
