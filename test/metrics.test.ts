import { afterEach, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, publishStatus, SECRET, startAuthServer } from "./helpers/auth.js";
import { StreamClient } from "./helpers/clients.js";

let herald: RunningHerald | undefined;
afterEach(async () => {
  await herald?.shutdown();
  herald = undefined;
});

/** The value of one sample line, e.g. `herald_connections{transport="sse"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((row) => row.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("GET /metrics", () => {
  it("reports connections by transport, publishes, deliveries, auth failures, rate limits and the store", async () => {
    const publisher = makeKey("ci", ["*"]);
    herald = await startAuthServer({
      auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET }, metrics: "open" },
      limits: { publish: { rate: 0.1, burst: 2 } },
    });
    const token = await hsToken({ mailboxes: ["m"] });
    const sse = new StreamClient(`${herald.url}/v1/mailboxes/m/events?token=${token}`);
    const ndjson = new StreamClient(`${herald.url}/v1/mailboxes/m/stream?token=${token}`);
    await Promise.all([sse.opened, ndjson.opened]);
    await publishStatus(herald.url, "m", bearer(publisher.key), { body: "one" });
    await publishStatus(herald.url, "m", bearer(publisher.key), { body: "two" });
    expect((await publishStatus(herald.url, "m", bearer(publisher.key))).status).toBe(429);
    await publishStatus(herald.url, "m", {});
    await fetch(`${herald.url}/v1/mailboxes/other/messages?token=${token}`);
    await sse.untilMessages(2);
    await ndjson.untilMessages(2);

    const response = await fetch(`${herald.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/plain");
    const text = await response.text();
    expect(sample(text, 'herald_connections{transport="sse"}')).toBe(1);
    expect(sample(text, 'herald_connections{transport="ndjson"}')).toBe(1);
    expect(sample(text, 'herald_connections{transport="ws"}')).toBe(0);
    expect(sample(text, 'herald_connections{transport="long-poll"}')).toBe(0);
    expect(sample(text, "herald_published_total")).toBe(2);
    expect(sample(text, "herald_delivered_total")).toBe(4);
    expect(sample(text, "herald_gaps_total")).toBe(0);
    expect(sample(text, "herald_slow_consumers_cut_total")).toBe(0);
    expect(sample(text, 'herald_auth_failures_total{reason="unauthorized"}')).toBe(1);
    expect(sample(text, 'herald_auth_failures_total{reason="forbidden"}')).toBe(1);
    expect(sample(text, 'herald_rate_limited_total{limit="publish"}')).toBe(1);
    expect(sample(text, "herald_store_mailboxes")).toBe(1);
    expect(sample(text, "herald_store_messages")).toBe(2);
    expect(sample(text, "herald_store_bytes")).toBeGreaterThan(0);
    expect(sample(text, "herald_publish_duration_seconds_count")).toBe(2);
    expect(sample(text, "herald_max_connections")).toBe(16000);
    expect(text).toContain("herald_process_open_fds");
    sse.close();
    ndjson.close();
  });

  it("needs a key with the metrics right once one is configured", async () => {
    const scraper = makeKey("prometheus", [], { metrics: true });
    const publisher = makeKey("ci", ["*"]);
    herald = await startAuthServer({ auth: { keys: [scraper.entry, publisher.entry], reads: "open" } });
    expect((await fetch(`${herald.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${herald.url}/metrics`, { headers: bearer(publisher.key) })).status).toBe(403);
    const allowed = await fetch(`${herald.url}/metrics`, { headers: bearer(scraper.key) });
    expect(allowed.status).toBe(200);
    expect(await allowed.text()).toContain("herald_published_total");
  });

  it("needs a metrics key whenever auth is on, unless auth.metrics is open", async () => {
    const publisher = makeKey("ci", ["*"]);
    herald = await startAuthServer({ auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET } } });
    expect((await fetch(`${herald.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${herald.url}/metrics`, { headers: bearer(publisher.key) })).status).toBe(403);
    await herald.shutdown();
    herald = await startAuthServer({
      auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET }, metrics: "open" },
    });
    expect((await fetch(`${herald.url}/metrics`)).status).toBe(200);
  });

  it("is open on a loopback server without auth", async () => {
    herald = await startAuthServer();
    await publishStatus(herald.url, "m", {});
    expect(sample(await (await fetch(`${herald.url}/metrics`)).text(), "herald_published_total")).toBe(1);
  });
});
