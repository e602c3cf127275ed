import type { WireMessage } from "./clients.js";

/** Publishes `items` to `mailbox` in order as one batch (POST /v1/messages, at most 100); the stored messages. */
export async function publishBatch(base: string, mailbox: string, items: readonly object[]): Promise<WireMessage[]> {
  const response = await fetch(`${base}/v1/messages`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages: items.map((item) => ({ mailbox, ...item })) }),
  });
  if (response.status !== 201) throw new Error(`batch publish failed: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { messages: WireMessage[] }).messages;
}
