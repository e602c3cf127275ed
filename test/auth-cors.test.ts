import { afterEach, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { hsToken, SECRET, startAuthServer } from "./helpers/auth.js";
import { StreamClient } from "./helpers/clients.js";

let herald: RunningHerald | undefined;
afterEach(async () => {
  await herald?.shutdown();
  herald = undefined;
});

function preflight(origin: string, method = "POST", headers = "authorization, content-type"): Promise<Response> {
  return fetch(`${(herald as RunningHerald).url}/v1/mailboxes/m/messages`, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": method, "access-control-request-headers": headers },
  });
}

describe("CORS", () => {
  it("allows configured origins with credentials, on preflights, answers and streams", async () => {
    herald = await startAuthServer({
      auth: { tokens: { hs256Secret: SECRET }, cors: { origins: ["https://app.example"] } },
    });
    const allowed = await preflight("https://app.example");
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(allowed.headers.get("access-control-allow-credentials")).toBe("true");
    expect(allowed.headers.get("access-control-allow-methods")).toContain("POST");
    expect(allowed.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
    expect(allowed.headers.get("vary")).toBe("Origin");

    const other = await preflight("https://evil.example");
    expect(other.headers.get("access-control-allow-origin")).toBeNull();

    const token = await hsToken({ mailboxes: ["m"] });
    const read = await fetch(`${herald.url}/v1/mailboxes/m/messages`, {
      headers: { origin: "https://app.example", cookie: `herald_token=${token}` },
    });
    expect(read.status).toBe(200);
    expect(read.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(read.headers.get("access-control-expose-headers")).toContain("Retry-After");
    const refused = await fetch(`${herald.url}/v1/mailboxes/m/messages`, {
      headers: { origin: "https://app.example" },
    });
    expect(refused.status).toBe(401);
    // The browser may read the error because the origin is allowed.
    expect(refused.headers.get("access-control-allow-origin")).toBe("https://app.example");

    const stream = new StreamClient(`${herald.url}/v1/mailboxes/m/events?token=${token}`, {
      origin: "https://app.example",
    });
    await stream.opened;
    expect(stream.headers["access-control-allow-origin"]).toBe("https://app.example");
    expect(stream.headers["access-control-allow-credentials"]).toBe("true");
    stream.close();
  });

  it("sends no CORS headers by default when auth is on (same origin only)", async () => {
    herald = await startAuthServer({ auth: { tokens: { hs256Secret: SECRET } } });
    const answer = await preflight("https://app.example");
    expect(answer.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("allows loopback origins without credentials on loopback without auth", async () => {
    herald = await startAuthServer();
    expect((await preflight("https://evil.example")).headers.get("access-control-allow-origin")).toBeNull();
    const answer = await preflight("http://localhost:3000");
    expect(answer.status).toBe(204);
    expect(answer.headers.get("access-control-allow-origin")).toBe("http://localhost:3000");
    expect(answer.headers.get("vary")).toBe("Origin");
    expect(answer.headers.get("access-control-allow-credentials")).toBeNull();
    const published = await fetch(`${herald.url}/v1/mailboxes/m/messages`, {
      method: "POST",
      headers: { origin: "http://localhost:3000" },
      body: "hi",
    });
    expect(published.status).toBe(201);
    expect(published.headers.get("access-control-allow-origin")).toBe("http://localhost:3000");
    expect(published.headers.get("access-control-allow-origin")?.split(",")).toHaveLength(1);
  });
});
