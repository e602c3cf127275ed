import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type * as Client from "../client/src/index.js";
import { DEMO_FEED_MAILBOX, startDemoFeed } from "../src/demo/demo-feed.js";
import type { RunningHerald } from "../src/server.js";
import { publish, StreamClient } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";

let herald: RunningHerald;

beforeAll(async () => {
  herald = await startTestServer();
});
afterAll(() => herald.shutdown());

async function retained(mailbox: string): Promise<number> {
  const response = await fetch(`${herald.url}/v1/mailboxes/${mailbox}/messages?limit=1000`);
  return ((await response.json()) as { messages: unknown[] }).messages.length;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("demo routes", () => {
  it("serves the index, the four pages, their assets and the client bundle", async () => {
    const index = await fetch(`${herald.url}/`);
    expect(index.headers.get("content-type")).toContain("text/html");
    expect(await index.text()).toContain('href="/demo/inbox?user=alice"');
    for (const page of ["chat", "dashboard", "inbox", "ticker"]) {
      const response = await fetch(`${herald.url}/demo/${page}`);
      expect(response.status, page).toBe(200);
      expect(await response.text()).toContain(`/demo/assets/${page}.js`);
    }
    const asset = await fetch(`${herald.url}/demo/assets/common.js`);
    expect(asset.headers.get("content-type")).toContain("text/javascript");
    const bundle = await fetch(`${herald.url}/client.js`);
    expect(bundle.headers.get("content-type")).toContain("text/javascript");
    const code = await bundle.text();
    expect(code).toMatch(/export\s*\{[^}]*\bsubscribe\b/);
    expect(code).not.toMatch(/^import /m);
  });

  it("serves the icon, which every page links with the shared stylesheet", async () => {
    for (const path of ["/favicon.ico", "/demo/assets/favicon.svg"]) {
      const response = await fetch(`${herald.url}${path}`);
      expect(response.status, path).toBe(200);
      expect(response.headers.get("content-type"), path).toBe("image/svg+xml");
      expect(await response.text(), path).toMatch(/^<svg /);
    }
    for (const path of ["/", "/demo/chat", "/demo/dashboard", "/demo/inbox", "/demo/ticker"]) {
      const html = await (await fetch(`${herald.url}${path}`)).text();
      expect(html, path).toMatch(/<link rel="icon" href="\/demo\/assets\/favicon\.svg"/);
      expect(html, path).toContain('<link rel="stylesheet" href="/demo/assets/demo.css" />');
      expect(html, path).toContain('<meta name="viewport" content="width=device-width, initial-scale=1" />');
    }
  });

  it("tells readers of every page how to give a token where the server has auth on", async () => {
    for (const page of ["chat", "inbox", "ticker"]) {
      expect(await (await fetch(`${herald.url}/demo/${page}`)).text(), page).toContain("?token=");
    }
    expect(await (await fetch(`${herald.url}/`)).text()).toContain("token=");
    // That the pages take it, and say so on a 401, is test/browser.test.ts's.
  });

  it("serves a bundle that also runs in Node 20", async () => {
    const dir = await mkdtemp(join(tmpdir(), "herald-bundle-"));
    try {
      const file = join(dir, "client.mjs");
      await writeFile(file, await (await fetch(`${herald.url}/client.js`)).text());
      const client = (await import(pathToFileURL(file).href)) as typeof Client;
      const bodies: (string | undefined)[] = [];
      const subscription = client.subscribe(
        ["user:bundle"],
        { onMessage: (m) => bodies.push(m.body) },
        {
          url: herald.url,
        },
      );
      await expect.poll(() => subscription.status.state).toBe("open");
      await publish(herald.url, "user:bundle", { body: "from node" });
      await expect.poll(() => bodies).toEqual(["from node"]);
      subscription.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("answers unknown pages and assets with JSON 404s", async () => {
    for (const path of ["/demo/nope", "/demo/assets/secret.txt", "/demo/assets/..%2F..%2Fpackage.json"]) {
      const response = await fetch(`${herald.url}${path}`);
      expect(response.status, path).toBe(404);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("not_found");
    }
  });
});

describe("demo feed", () => {
  it("publishes only while someone watches feed:demo", async () => {
    const feed = startDemoFeed(herald.hub, 50);
    try {
      await pause(300);
      expect(await retained(DEMO_FEED_MAILBOX)).toBe(0);
      const watcher = new StreamClient(`${herald.url}/v1/mailboxes/${DEMO_FEED_MAILBOX}/stream`);
      await watcher.opened;
      // One message per metric, keyed by it, so /latest has the current value of each.
      const samples = await watcher.untilMessages(3);
      expect(samples.map((sample) => [sample.key, Object.keys(sample.data as object)])).toEqual([
        ["cpu", ["cpu"]],
        ["memory", ["memory"]],
        ["requests", ["requests"]],
      ]);
      expect(samples[0]?.body).toMatch(/^cpu \d+%$/);
      const latest = await fetch(`${herald.url}/v1/mailboxes/${DEMO_FEED_MAILBOX}/latest`);
      const snapshot = (await latest.json()) as { messages: { key: string }[] };
      expect(snapshot.messages.map((message) => message.key)).toEqual(["cpu", "memory", "requests"]);
      watcher.close();
      await expect.poll(() => herald.hub.watcherCount(DEMO_FEED_MAILBOX)).toBe(0);
      const stored = await retained(DEMO_FEED_MAILBOX);
      await pause(300);
      expect(await retained(DEMO_FEED_MAILBOX)).toBe(stored);
    } finally {
      feed.stop();
    }
  });
});
