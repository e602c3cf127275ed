import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redactUrl } from "../src/http/middleware/request-log.js";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, publishStatus, SECRET, startAuthServer } from "./helpers/auth.js";
import { StreamClient } from "./helpers/clients.js";

let herald: RunningHerald;
const lines: string[] = [];
const publisher = makeKey("ci", ["*"]);

beforeAll(async () => {
  herald = await startAuthServer({
    auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET } },
    logLines: lines,
  });
});
afterAll(() => herald.shutdown());

async function untilLogged(predicate: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for (let i = 0; i < 250; i++) {
    const found = lines.map((line) => JSON.parse(line) as Record<string, unknown>).find(predicate);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`not logged; lines:\n${lines.join("\n")}`);
}

describe("request logs", () => {
  it("are JSON lines with a request id, caller and status, and never carry a token or key", async () => {
    const token = await hsToken({ sub: "alice", mailboxes: ["user:alice"] });
    const stream = new StreamClient(`${herald.url}/v1/mailboxes/user:alice/events?cursor=now&token=${token}`, {
      "x-request-id": "req-sse-1",
    });
    await stream.opened;
    expect(stream.headers["x-request-id"]).toBe("req-sse-1");
    stream.close();
    const published = await publishStatus(herald.url, "user:alice", {
      ...bearer(publisher.key),
      "x-request-id": "bad id!",
    });
    expect(published.status).toBe(201);
    const generatedId = published.headers.get("x-request-id");
    expect(generatedId).toMatch(/^[0-9a-f-]{36}$/);
    await fetch(`${herald.url}/v1/messages?mailbox=user:alice&token=${token}&access_token=${token}`, {
      headers: { cookie: `herald_token=${token}` },
    });
    await fetch(`${herald.url}/v1/mailboxes/user:alice/messages?token=${token}x`);

    const sse = await untilLogged((line) => line.reqId === "req-sse-1");
    expect(sse).toMatchObject({ method: "GET", status: 200, caller: "alice", visitor: "sub:alice", msg: "request" });
    expect(sse.url).toBe("/v1/mailboxes/user:alice/events?cursor=now&token=[REDACTED]");
    const publish = await untilLogged((line) => line.reqId === generatedId);
    expect(publish).toMatchObject({ method: "POST", status: 201, caller: "ci", visitor: "key:ci" });
    const refused = await untilLogged((line) => line.status === 401);
    expect(refused.url).toBe("/v1/mailboxes/user:alice/messages?token=[REDACTED]");
    await untilLogged((line) => String(line.url).includes("access_token=[REDACTED]"));

    const all = lines.join("\n");
    expect(all).not.toContain(token);
    expect(all).not.toContain(token.split(".")[2]);
    expect(all).not.toContain(publisher.key);
    expect(all).toContain('"level":30');
  });

  it("redacts every secret-bearing query parameter", () => {
    expect(redactUrl("/x?a=1&token=abc.def&b=2")).toBe("/x?a=1&token=[REDACTED]&b=2");
    expect(redactUrl("/x?TOKEN=abc#frag")).toBe("/x?TOKEN=[REDACTED]#frag");
    expect(redactUrl("/x?tokens=keep")).toBe("/x?tokens=keep");
    // Names are compared decoded: an encoded one is still a secret one, and a query with no such name is kept as is.
    expect(redactUrl("/x?%74oken=abc&Key=k&auth=a")).toBe("/x?%74oken=[REDACTED]&Key=[REDACTED]&auth=[REDACTED]");
    expect(redactUrl("/x?cursor=abc&wait=30")).toBe("/x?cursor=abc&wait=30");
  });
});
