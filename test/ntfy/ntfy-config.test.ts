import { describe, expect, it } from "vitest";
import { parseFileConfig } from "../../src/config-file.js";
import { ConfigError } from "../../src/errors.js";
import { parseNtfyDelay } from "../../src/ntfy/ntfy-publish-input.js";
import { parseSince } from "../../src/ntfy/ntfy-since.js";
import { startTestServer } from "../helpers/server.js";

describe("the ntfy config section", () => {
  it("takes a prefix, '/' or false, and refuses anything else clearly", () => {
    expect(parseFileConfig({ ntfy: { prefix: "/push/ntfy" } }, {}).ntfy).toEqual({ prefix: "/push/ntfy" });
    expect(parseFileConfig({ ntfy: { prefix: false } }, {}).ntfy).toEqual({ prefix: false });
    expect(parseFileConfig({ ntfy: {} }, {}).ntfy).toEqual({ prefix: "/ntfy" });
    for (const prefix of ["ntfy", "/ntfy/", "/a b", true, 3]) {
      expect(() => parseFileConfig({ ntfy: { prefix } }, {})).toThrow(ConfigError);
    }
    expect(() => parseFileConfig({ ntfy: { prefx: "/x" } }, {})).toThrow(/unknown field "prefx"/);
  });

  it("serves at the root with prefix '/', and not at all with false", async () => {
    const root = await startTestServer({ config: { ntfyPrefix: "/" } });
    try {
      const sent = await fetch(`${root.url}/mytopic`, { method: "PUT", body: "at the root" });
      expect(sent.status).toBe(200);
      const polled = await fetch(`${root.url}/mytopic/json?poll=1`);
      expect(JSON.parse(await polled.text())).toMatchObject({ message: "at the root" });
      // Herald's own routes still win.
      expect((await fetch(`${root.url}/healthz`)).status).toBe(200);
    } finally {
      await root.shutdown();
    }
    const off = await startTestServer({ config: { ntfyPrefix: false } });
    try {
      expect((await fetch(`${off.url}/ntfy/mytopic`, { method: "PUT", body: "x" })).status).toBe(404);
    } finally {
      await off.shutdown();
    }
  });
});

describe("ntfy's since and delay texts", () => {
  it("reads durations, Unix times, ids and keywords", () => {
    const now = 1_700_000_000_000;
    expect(parseSince("", false)).toEqual({ kind: "none" });
    expect(parseSince("", true)).toEqual({ kind: "all" });
    expect(parseSince("10m", false, now)).toEqual({ kind: "time", ms: now - 600_000 });
    expect(parseSince("1h30m", false, now)).toEqual({ kind: "time", ms: now - 5_400_000 });
    expect(parseSince("2 days", false, now)).toEqual({ kind: "time", ms: now - 172_800_000 });
    expect(parseSince("1700000000", false)).toEqual({ kind: "time", ms: 1_700_000_000_000 });
    expect(parseSince("W1siYWJjIiwiZSIsMV1d", false)).toEqual({ kind: "cursor", cursor: "W1siYWJjIiwiZSIsMV1d" });
    expect(() => parseSince("last tuesday", false)).toThrow(/since/);
  });

  it("schedules durations and Unix times, and refuses natural language", () => {
    expect(parseNtfyDelay("30m", '"delay"')).toMatchObject({ kind: "delay", ms: 1_800_000 });
    expect(parseNtfyDelay("1 hour", '"delay"')).toMatchObject({ kind: "delay", ms: 3_600_000 });
    expect(parseNtfyDelay("2000000000", '"delay"')).toMatchObject({ kind: "at", atMs: 2_000_000_000_000 });
    expect(() => parseNtfyDelay("tomorrow, 10am", '"delay"')).toThrow(/not supported/);
  });
});
