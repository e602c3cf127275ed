import { describe, expect, it } from "vitest";
import { parseFileConfig } from "../src/config-file.js";
import { parseMercureSection } from "../src/mercure/mercure-config.js";

const SECRET = "a secret of at least thirty-two bytes, really";

describe("the mercure config section", () => {
  it("takes keys by value or environment, with defaults for the rest", () => {
    const settings = parseMercureSection(
      {
        keys: [{ alg: "HS256", secretEnv: "HUB_SECRET", issuer: "https://app.example", roles: ["publish"] }],
        audience: "https://hub.example/.well-known/mercure",
      },
      { HUB_SECRET: SECRET },
    );
    expect(settings.keys).toEqual([
      { alg: "HS256", material: SECRET, issuer: "https://app.example", roles: ["publish"] },
    ]);
    expect(settings).toMatchObject({
      audience: "https://hub.example/.well-known/mercure",
      subscriptionsMailbox: "mercure.subscriptions",
      anonymousSubscribers: true,
      anonymousPublishers: false,
      subscriptions: false,
      discovery: true,
      mailbox: "mercure",
    });
    expect(parseFileConfig({ mercure: { keys: [{ alg: "HS512", secret: SECRET }] } }, {}).mercure?.keys).toHaveLength(
      1,
    );
  });

  it.each([
    [{}, /at least one key/],
    [{ keys: [{ alg: "none", secret: SECRET }] }, /alg must be one of/],
    [{ keys: [{ alg: "HS256", secret: "short" }] }, /at least 32 bytes/],
    [{ keys: [{ alg: "HS256", secret: SECRET, publicKey: "pem" }] }, /uses a secret/],
    [{ keys: [{ alg: "ES256", secret: SECRET }] }, /needs publicKey/],
    [{ keys: [{ alg: "HS256", secretEnv: "UNSET" }] }, /UNSET is not set/],
    [{ keys: [{ alg: "HS256", secret: SECRET, roles: ["admin"] }] }, /roles/],
    [{ keys: [{ alg: "HS256", secret: SECRET }], audience: "hub" }, /audience must be an absolute URL/],
    [{ keys: [{ alg: "HS256", secret: SECRET }], mailbox: "a b" }, /mailbox must be a mailbox name/],
    [{ keys: [{ alg: "HS256", secret: SECRET }], maxMatchers: 1000 }, /maxMatchers must be a number from 1 to 100/],
    [{ keys: [{ alg: "HS256", secret: SECRET }], subscription: true }, /unknown field "subscription"/],
    [{ keys: [{ alg: "HS256", secret: SECRET, issuer: "https://app.example" }] }, /audience is required/],
  ])("refuses %j", (section, message) => {
    expect(() => parseMercureSection(section, {})).toThrow(message);
  });
});

describe("what the hub reads back", () => {
  it("is not an update unless every field is what the hub writes, and a filter that throws passes nothing", async () => {
    const { updateOf } = await import("../src/mercure/mercure-update.js");
    const { passes } = await import("../src/core/message-filter.js");
    const stored = (mercure: unknown) => ({
      mailbox: "mercure",
      epoch: "e",
      seq: 1,
      id: "m",
      timeMs: 0,
      expiresAtMs: 1,
      json: JSON.stringify({ id: "m", body: "x", data: { mercure } }),
    });
    expect(updateOf(stored({ topics: ["a"], id: "one" }))?.id).toBe("one");
    for (const forged of [
      { topics: [{}], id: "x" },
      { topics: [], id: "x" },
      { topics: ["a"], id: "x\nevent: evil" },
      { topics: ["a"], id: "x", type: "t\ndata: injected" },
      { topics: ["a"], id: "x", retry: "soon" },
      "not an object",
    ]) {
      expect(updateOf(stored(forged)), JSON.stringify(forged)).toBeUndefined();
    }
    const throwing = {
      accepts: () => {
        throw new Error("unreadable");
      },
      signature: "throws",
    };
    expect(passes(throwing, stored({ topics: ["a"], id: "one" }))).toBe(false);
  });
});
