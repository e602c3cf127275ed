import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HeraldChild, runHerald, spawnHerald } from "./helpers/child.js";
import { publish } from "./helpers/clients.js";
import { startTestPushService, type TestPushService } from "./helpers/push-service.js";

interface Created {
  publicKey: string;
  privateKey: string;
  subject: string;
  config: { push: { vapid: Record<string, string> } };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "herald-push-cli-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("herald vapid create", () => {
  it("prints a key pair and the config section, and refuses a bad subject", async () => {
    const run = await runHerald(["vapid", "create", "--subject", "mailto:ops@example.com"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("HERALD_VAPID_PRIVATE_KEY=");
    expect(run.stdout).toContain('"privateKeyEnv":"HERALD_VAPID_PRIVATE_KEY"');
    const bad = await runHerald(["vapid", "create", "--subject", "ops@example.com"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/subject must be a mailto: address or an https: URL/);
    const missing = await runHerald(["vapid", "create"]);
    expect(missing.code).toBe(2);
  });

  it("makes keys `herald serve` pushes with, trusting the push service's CA through NODE_EXTRA_CA_CERTS", async () => {
    const run = await runHerald(["vapid", "create", "--subject", "mailto:ops@example.com", "--json"]);
    const created = JSON.parse(run.stdout) as Created;
    expect(created.publicKey).toMatch(/^[A-Za-z0-9_-]{87}$/);
    expect(created.privateKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    let service: TestPushService | undefined;
    let herald: HeraldChild | undefined;
    try {
      service = await startTestPushService({ vapidPublicKey: created.publicKey, subject: created.subject });
      const configFile = join(dir, "herald.json");
      await writeFile(
        configFile,
        JSON.stringify({ push: { ...created.config.push, allowedHosts: [new URL(service.url).host] } }),
      );
      herald = await spawnHerald(["--config", configFile], {
        HERALD_VAPID_PRIVATE_KEY: created.privateKey,
        NODE_EXTRA_CA_CERTS: service.caFile,
      });
      const key = (await (await fetch(`${herald.url}/v1/push/vapid-public-key`)).json()) as { publicKey: string };
      expect(key.publicKey).toBe(created.publicKey);
      const subscription = service.subscribe();
      const response = await fetch(`${herald.url}/v1/push/subscriptions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ endpoint: subscription.endpoint, keys: subscription.keys, mailboxes: ["user:ops"] }),
      });
      expect(response.status).toBe(201);
      await publish(herald.url, "user:ops", { title: "Disk full", body: "/var at 99%" });
      const [push] = await service.waitFor(1, { subscription, timeoutMs: 10_000 });
      expect(push?.payload).toMatchObject({ mailbox: "user:ops", title: "Disk full", body: "/var at 99%" });
    } finally {
      herald?.process.kill("SIGTERM");
      await herald?.exited;
      await service?.close();
    }
  });
});
