import { type IncomingMessage, request } from "node:http";
import type { MessageFields } from "../../src/core/message-input.js";

/** A message as the server sends it: the publisher's fields and what the server added. */
export interface WireMessage extends MessageFields {
  id: string;
  mailbox: string;
  seq: number;
  time: string;
  expires: string;
  cursor: string;
}

export interface SseEvent {
  event: string;
  id: string | undefined;
  data: string;
}

export async function publish(
  base: string,
  mailbox: string,
  message: Record<string, unknown> | string,
  headers: Record<string, string> = {},
): Promise<WireMessage> {
  const json = typeof message !== "string";
  const response = await fetch(`${base}/v1/mailboxes/${encodeURIComponent(mailbox)}/messages`, {
    method: "POST",
    headers: { ...(json ? { "content-type": "application/json" } : {}), ...headers },
    body: json ? JSON.stringify(message) : message,
  });
  if (response.status !== 201 && response.status !== 200) {
    throw new Error(`publish failed: ${response.status} ${await response.text()}`);
  }
  return (await response.json()) as WireMessage;
}

export async function publishMany(base: string, mailbox: string, count: number, from = 1): Promise<WireMessage[]> {
  const published: WireMessage[] = [];
  for (let i = from; i < from + count; i++) published.push(await publish(base, mailbox, { body: `m${i}` }));
  return published;
}

/** Every retained message of `mailbox` after `cursor`, in one read (at most 1,000). */
export async function readAfter(base: string, mailbox: string, cursor: string): Promise<WireMessage[]> {
  const response = await fetch(
    `${base}/v1/mailboxes/${encodeURIComponent(mailbox)}/messages?cursor=${encodeURIComponent(cursor)}&limit=1000`,
  );
  if (response.status !== 200) throw new Error(`read failed: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { messages: WireMessage[] }).messages;
}

/** A streaming GET read over a raw socket, so a test can see exactly what the server wrote and cut it at will. */
export class StreamClient {
  readonly lines: string[] = [];
  readonly events: SseEvent[] = [];
  status = 0;
  headers: Record<string, string | string[] | undefined> = {};
  ended = false;
  #buffer = "";
  #request: ReturnType<typeof request>;
  #response: IncomingMessage | undefined;
  #waiters: (() => void)[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;

  constructor(url: string, headers: Record<string, string> = {}) {
    let resolveOpened!: () => void;
    let resolveClosed!: () => void;
    this.opened = new Promise((resolve) => {
      resolveOpened = resolve;
    });
    this.closed = new Promise((resolve) => {
      resolveClosed = resolve;
    });
    this.#request = request(url, { headers }, (response) => {
      this.#response = response;
      this.status = response.statusCode ?? 0;
      this.headers = response.headers;
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => this.#onData(chunk));
      const finish = () => {
        this.ended = true;
        resolveClosed();
        this.#notify();
      };
      response.on("end", finish);
      response.on("close", finish);
      response.on("error", finish);
      resolveOpened();
    });
    this.#request.on("error", () => {
      this.ended = true;
      resolveOpened();
      resolveClosed();
      this.#notify();
    });
    this.#request.end();
  }

  /** Parsed JSON of every ndjson line, or of every SSE `data:`. */
  get objects(): Record<string, unknown>[] {
    if (this.events.length > 0) return this.events.map((event) => JSON.parse(event.data));
    return this.lines.map((line) => JSON.parse(line));
  }

  messages(): WireMessage[] {
    if (this.events.length > 0) {
      return this.events.filter((e) => e.event === "message").map((e) => JSON.parse(e.data) as WireMessage);
    }
    return this.lines
      .map((line) => JSON.parse(line) as { type: string } & WireMessage)
      .filter((object) => object.type === "message");
  }

  raw = "";

  #onData(chunk: string): void {
    this.raw += chunk;
    this.#buffer += chunk;
    const sse = String(this.headers["content-type"] ?? "").startsWith("text/event-stream");
    if (sse) {
      let index = this.#buffer.indexOf("\n\n");
      while (index !== -1) {
        const block = this.#buffer.slice(0, index);
        this.#buffer = this.#buffer.slice(index + 2);
        const event: SseEvent = { event: "message", id: undefined, data: "" };
        let hasData = false;
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event.event = line.slice(7);
          else if (line.startsWith("id: ")) event.id = line.slice(4);
          else if (line.startsWith("data: ")) {
            // Several data lines make one value joined by newlines, as EventSource joins them.
            event.data += (hasData ? "\n" : "") + line.slice(6);
            hasData = true;
          }
        }
        if (hasData) this.events.push(event);
        index = this.#buffer.indexOf("\n\n");
      }
    } else {
      let index = this.#buffer.indexOf("\n");
      while (index !== -1) {
        const line = this.#buffer.slice(0, index);
        this.#buffer = this.#buffer.slice(index + 1);
        if (line.length > 0) this.lines.push(line);
        index = this.#buffer.indexOf("\n");
      }
    }
    this.#notify();
  }

  #notify(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** Waits until `predicate` holds, failing after `timeoutMs` with what was received. */
  async until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out; received so far:\n${this.raw.slice(-2000)}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  async untilMessages(count: number, timeoutMs = 5000): Promise<WireMessage[]> {
    await this.until(() => this.messages().length >= count, timeoutMs);
    return this.messages();
  }

  /** Stops reading: the server's writes back up into its queue, as with a slow client. */
  pause(): void {
    this.#response?.pause();
  }

  resume(): void {
    this.#response?.resume();
  }

  close(): void {
    this.#request.destroy();
  }
}

export function bodies(messages: readonly { body?: string }[]): (string | undefined)[] {
  return messages.map((message) => message.body);
}
