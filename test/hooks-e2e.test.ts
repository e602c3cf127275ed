import { afterAll, beforeAll, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { StreamClient } from "./helpers/clients.js";
import { deliver, githubHeaders, startHookServer } from "./helpers/hooks.js";

const SECRET = "e2e-secret";
let herald: RunningHerald;

beforeAll(async () => {
  herald = await startHookServer({
    hooks: [
      {
        id: "gh",
        mailbox: "user:{{sender.login}}",
        verify: { scheme: "github", secret: SECRET },
        title: "{{repository.full_name}}: {{action}} #{{pull_request.number}}",
        body: "{{pull_request.title}}{{pull_request.missing}}",
      },
    ],
  });
});
afterAll(async () => {
  await herald.shutdown();
});

it("delivers a signed GitHub-style delivery to an SSE subscriber of the templated mailbox, once", async () => {
  const client = new StreamClient(`${herald.url}/v1/mailboxes/user:alice/events?cursor=now`);
  await client.opened;
  expect(client.status).toBe(200);
  await client.until(() => client.raw.length > 0);
  const payload = JSON.stringify({
    action: "opened",
    number: 7,
    pull_request: { number: 7, title: "Add webhooks" },
    repository: { full_name: "acme/rocket" },
    sender: { login: "alice" },
  });
  const headers = githubHeaders(SECRET, payload, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
  const answer = await deliver(herald.url, "gh", payload, headers);
  expect(answer.status).toBe(202);
  const [message] = await client.untilMessages(1);
  expect(message).toMatchObject({
    id: answer.json.id,
    mailbox: "user:alice",
    title: "acme/rocket: opened #7",
    body: "Add webhooks",
    data: JSON.parse(payload),
  });
  // GitHub's "Redeliver" sends the same delivery id: acknowledged, not shown twice.
  const redelivered = await deliver(herald.url, "gh", payload, headers);
  expect(redelivered.status).toBe(200);
  const marker = await fetch(`${herald.url}/v1/mailboxes/user:alice/messages`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ title: "marker" }),
  });
  expect(marker.status).toBe(201);
  const messages = await client.untilMessages(2);
  expect(messages.map((m) => m.title)).toEqual(["acme/rocket: opened #7", "marker"]);
  client.close();
});
