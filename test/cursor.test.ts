import { describe, expect, it } from "vitest";
import { encodeCursor, encodeSingleCursor, MAX_CURSOR_LENGTH, parseCursor } from "../src/core/cursor.js";
import { HeraldError } from "../src/errors.js";

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

describe("cursors", () => {
  it("round-trip per mailbox and ignore mailboxes of other subscriptions", () => {
    const state = new Map([
      ["user:alice", { epoch: "e1", seq: 7 }],
      ["room:1", { epoch: "e2", seq: 0 }],
    ]);
    const cursor = encodeCursor(["user:alice", "room:1"], state);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(parseCursor(cursor, ["room:1", "user:alice"])).toEqual(
      new Map([
        ["room:1", { epoch: "e2", seq: 0 }],
        ["user:alice", { epoch: "e1", seq: 7 }],
      ]),
    );
    expect(parseCursor(cursor, ["user:bob"])).toEqual(new Map());
  });

  it("encode a single mailbox the same way either path", () => {
    const single = encodeSingleCursor("feed", "abc", 3);
    expect(single).toBe(encodeCursor(["feed"], new Map([["feed", { epoch: "abc", seq: 3 }]])));
  });

  it.each([
    ["empty", ""],
    ["not base64url", "a+b/"],
    ["not JSON", Buffer.from("{{").toString("base64url")],
    ["not an array", b64({ a: 1 })],
    ["wrong arity", b64([["k", "e"]])],
    ["negative seq", b64([["k", "e", -1]])],
    ["fractional seq", b64([["k", "e", 1.5]])],
    ["epoch with odd characters", b64([["k", "e/1", 1]])],
    ["too long", "A".repeat(MAX_CURSOR_LENGTH + 1)],
  ])("rejects a cursor that is %s with bad_cursor", (_, raw) => {
    expect(() => parseCursor(raw, ["x"])).toThrow(HeraldError);
    try {
      parseCursor(raw, ["x"]);
    } catch (error) {
      expect((error as HeraldError).code).toBe("bad_cursor");
    }
  });
});
