import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { startAuthServer } from "./helpers/auth.js";
import { publish, StreamClient } from "./helpers/clients.js";

let herald: RunningHerald;

beforeAll(async () => {
  herald = await startAuthServer({ config: { heartbeatSeconds: 0.2 } });
  // Shrink Node's slow-client timeouts (read at each check) so the test need not wait 20-60 s.
  herald.server.headersTimeout = 500;
  herald.server.requestTimeout = 1000;
});
afterAll(() => herald.shutdown());

/** A raw client that writes `head` and then stalls; resolves with what the server sent before closing. */
function stall(head: string): { socket: Socket; closed: Promise<string> } {
  const socket = connect(herald.port, "127.0.0.1");
  let received = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    received += chunk;
  });
  socket.on("error", () => {});
  socket.write(head);
  return { socket, closed: new Promise((resolve) => socket.on("close", () => resolve(received))) };
}

describe("slow clients", () => {
  it("are cut for slow headers and slow bodies, while a healthy stream outlives both timeouts", async () => {
    const stream = new StreamClient(`${herald.url}/v1/mailboxes/slow/events`);
    await stream.opened;
    const slowHeaders = stall("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    const slowBody = stall(
      "POST /v1/mailboxes/slow/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n0123456789",
    );
    expect(await slowHeaders.closed).toMatch(/^HTTP\/1\.1 408/);
    // Cut at a check after the request timeout; the stream, opened earlier, was older still at that check.
    expect(await slowBody.closed).toMatch(/^HTTP\/1\.1 408/);
    expect(stream.ended).toBe(false);
    await publish(herald.url, "slow", { body: "still here" });
    expect((await stream.untilMessages(1)).map((m) => m.body)).toEqual(["still here"]);
    expect(herald.hub.counters.published).toBe(1);
    stream.close();
  });
});
