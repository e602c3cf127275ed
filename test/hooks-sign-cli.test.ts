import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { deliver, startHookServer } from "./helpers/hooks.js";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node bin/herald.js hook sign ...` with `input` on stdin. */
function herald(args: string[], input: string | Buffer, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/herald.js", ...args], { env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

function headersOf(stdout: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of stdout.trim().split("\n")) {
    const at = line.indexOf(": ");
    headers[line.slice(0, at)] = line.slice(at + 2);
  }
  return headers;
}

describe("herald hook sign", () => {
  it("prints GitHub's documented signature for its test vector", async () => {
    const run = await herald(
      ["hook", "sign", "--scheme", "github", "--secret", "It's a Secret to Everybody", "--id", "d-1"],
      "Hello, World!",
    );
    expect(run.code).toBe(0);
    expect(headersOf(run.stdout)).toEqual({
      "Content-Type": "application/json",
      "X-GitHub-Delivery": "d-1",
      "X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    });
  });

  it("prints the Standard Webhooks test vector's signature", async () => {
    const run = await herald(
      [
        "hook",
        "sign",
        "--scheme",
        "standard-webhooks",
        "--secret-env",
        "SW_SECRET",
        "--id",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "--timestamp",
        "1614265330",
      ],
      '{"test": 2432232314}',
      { SW_SECRET: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" },
    );
    expect(run.code).toBe(0);
    expect(headersOf(run.stdout)).toMatchObject({
      "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
      "webhook-timestamp": "1614265330",
      "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    });
  });

  it("signs Stripe and generic payloads byte for byte, trailing newline included", async () => {
    const payload = '{"id":"evt_9"}\n';
    const stripe = await herald(
      ["hook", "sign", "--scheme", "stripe", "--secret", "whsec_x", "--timestamp", "1700000000"],
      payload,
    );
    const v1 = createHmac("sha256", "whsec_x").update(`1700000000.${payload}`).digest("hex");
    expect(headersOf(stripe.stdout)["Stripe-Signature"]).toBe(`t=1700000000,v1=${v1}`);
    const plain = await herald(
      ["hook", "sign", "--scheme", "hmac-sha256", "--secret", "k", "--header", "X-Sig"],
      payload,
    );
    expect(headersOf(plain.stdout)["X-Sig"]).toBe(createHmac("sha256", "k").update(payload).digest("hex"));
  });

  it("fails with usage errors and exit code 2", async () => {
    const noScheme = await herald(["hook", "sign", "--secret", "s"], "{}");
    expect(noScheme.code).toBe(2);
    expect(noScheme.stderr).toMatch(/--scheme must be one of github, stripe, standard-webhooks, hmac-sha256/);
    const noSecret = await herald(["hook", "sign", "--scheme", "github"], "{}");
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toMatch(/--secret or --secret-env is required/);
  });
});

describe("herald hook sign output against a running server", () => {
  let server: RunningHerald;
  beforeAll(async () => {
    server = await startHookServer({
      hooks: [
        { id: "pay", mailbox: "billing", verify: { scheme: "stripe", secret: "whsec_live" } },
        { id: "svc", mailbox: "ops", verify: { scheme: "standard-webhooks", secret: "whsec_c2VjcmV0LWtleQ==" } },
      ],
    });
  });
  afterAll(async () => {
    await server.shutdown();
  });

  it("produces headers the server accepts for each timestamped scheme", async () => {
    for (const [hook, scheme, secret] of [
      ["pay", "stripe", "whsec_live"],
      ["svc", "standard-webhooks", "whsec_c2VjcmV0LWtleQ=="],
    ] as const) {
      const payload = JSON.stringify({ id: `evt_${scheme}`, type: "test" });
      const run = await herald(["hook", "sign", "--scheme", scheme, "--secret", secret], payload);
      expect(run.code, run.stderr).toBe(0);
      const answer = await deliver(server.url, hook, payload, headersOf(run.stdout));
      expect(answer.status, answer.text).toBe(202);
    }
  });
});
