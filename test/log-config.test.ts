import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseFileConfig } from "../src/config-file.js";
import { ConfigError } from "../src/errors.js";
import { resolveLogLevel } from "../src/log-config.js";
import { spawnHerald } from "./helpers/child.js";

const dir = mkdtempSync(join(tmpdir(), "herald-log-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function errorOf(document: unknown): string {
  try {
    parseFileConfig(document, {});
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("config file: log section", () => {
  it("reads the level, and HERALD_LOG_LEVEL overrides it", () => {
    const { log } = parseFileConfig({ log: { level: "warn" } }, {});
    expect(log).toEqual({ level: "warn" });
    expect(resolveLogLevel(log, {})).toBe("warn");
    expect(resolveLogLevel(log, { HERALD_LOG_LEVEL: "debug" })).toBe("debug");
    expect(resolveLogLevel(log, { HERALD_LOG_LEVEL: "" })).toBe("warn");
    expect(resolveLogLevel(parseFileConfig({ log: {} }, {}).log, {})).toBe("info");
    expect(resolveLogLevel(parseFileConfig({}, {}).log, {})).toBe("info");
  });

  it("refuses unknown levels, unknown fields and a non-object, naming the field", () => {
    expect(errorOf({ log: { level: "verbose" } })).toMatch(/^log\.level must be one of fatal, error, warn, info/);
    expect(errorOf({ log: { level: 3 } })).toMatch(/^log\.level must be one of/);
    expect(errorOf({ log: { levle: "warn" } })).toBe('log: unknown field "levle" (allowed: level)');
    expect(errorOf({ log: "warn" })).toBe("log must be a JSON object");
    expect(() => resolveLogLevel(undefined, { HERALD_LOG_LEVEL: "loud" })).toThrow(/^HERALD_LOG_LEVEL must be one of/);
  });
});

/** Serves one request, shuts down, and answers everything the process printed. */
async function outputAfterOneRequest(configFile: string, env: NodeJS.ProcessEnv): Promise<string> {
  const child = await spawnHerald(["--config", configFile], env);
  try {
    expect((await fetch(`${child.url}/v1/mailboxes/logged/messages`)).status).toBe(200);
    child.process.kill("SIGTERM");
    expect(await child.exited).toBe(0);
    return child.output();
  } finally {
    child.process.kill("SIGKILL");
  }
}

describe("herald serve", () => {
  it('logs no request lines at level "warn" from the config file, unless HERALD_LOG_LEVEL says info', async () => {
    const file = join(dir, "herald.json");
    writeFileSync(file, JSON.stringify({ log: { level: "warn" } }));
    const quiet = await outputAfterOneRequest(file, { HERALD_LOG_LEVEL: "" });
    expect(quiet).toContain("Herald listening on");
    expect(quiet).not.toContain('"reqId"');
    const loud = await outputAfterOneRequest(file, { HERALD_LOG_LEVEL: "info" });
    expect(loud).toMatch(/"reqId".*"url":"\/v1\/mailboxes\/logged\/messages"/);
  });
});
