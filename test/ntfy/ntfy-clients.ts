import WebSocket from "ws";
import { until } from "../helpers/until.js";

/** An ntfy message or control event as the adapter sends it. */
export interface NtfyEvent {
  readonly id: string;
  readonly time: number;
  readonly expires?: number;
  readonly event: string;
  readonly topic: string;
  readonly message?: string;
  readonly title?: string;
  readonly tags?: string[];
  readonly priority?: number;
  readonly click?: string;
  readonly gaps?: { topic: string; reason: string }[];
}

/** A streaming GET read as text: the raw text so far, split as a test needs. */
export class TextStream {
  text = "";
  status = 0;
  contentType = "";
  readonly #controller = new AbortController();
  #done: Promise<void> = Promise.resolve();

  static async open(url: string, headers: Record<string, string> = {}): Promise<TextStream> {
    const stream = new TextStream();
    const response = await fetch(url, { headers, signal: stream.#controller.signal });
    stream.status = response.status;
    stream.contentType = response.headers.get("content-type") ?? "";
    if (!response.ok || response.body === null) {
      stream.text = await response.text();
      return stream;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    stream.#done = (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          stream.text += decoder.decode(value, { stream: true });
        }
      } catch {
        // aborted by close()
      }
    })();
    return stream;
  }

  /** Complete JSON lines so far. */
  get events(): NtfyEvent[] {
    return this.text
      .split("\n")
      .slice(0, -1)
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as NtfyEvent);
  }

  /** SSE events so far: their `event:` (message when absent), `id:` and parsed `data:`. */
  get sse(): { event: string; id: string | undefined; data: NtfyEvent }[] {
    const blocks = this.text.split("\n\n").slice(0, -1);
    return blocks.map((block) => {
      const lines = block.split("\n");
      const field = (name: string) => lines.find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2);
      return { event: field("event") ?? "message", id: field("id"), data: JSON.parse(field("data") ?? "{}") };
    });
  }

  messages(): NtfyEvent[] {
    return this.events.filter((event) => event.event === "message");
  }

  async waitFor(predicate: (stream: TextStream) => boolean, what: string): Promise<void> {
    await until(
      () => predicate(this),
      () => `${what}; got ${JSON.stringify(this.text.slice(-2000))}`,
    );
  }

  async close(): Promise<void> {
    this.#controller.abort();
    await this.#done;
  }
}

/** An ntfy WebSocket subscription: every JSON message it received. */
export class NtfySocket {
  readonly events: NtfyEvent[] = [];
  readonly #socket: WebSocket;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.on("message", (data) => this.events.push(JSON.parse(String(data)) as NtfyEvent));
  }

  static async open(url: string): Promise<NtfySocket> {
    const socket = new WebSocket(url);
    const client = new NtfySocket(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("error", reject);
      socket.once("unexpected-response", (_request, response) =>
        reject(new Error(`upgrade refused: ${response.statusCode}`)),
      );
    });
    return client;
  }

  async waitFor(predicate: (events: NtfyEvent[]) => boolean, what: string): Promise<void> {
    await until(
      () => predicate(this.events),
      () => `${what}; got ${JSON.stringify(this.events)}`,
    );
  }

  close(): void {
    this.#socket.close();
  }
}

/** `PUT <base>/ntfy/<topic>` with the message as body, as `curl -d` does. */
export async function ntfyPublish(
  base: string,
  topic: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${base}/ntfy/${topic}`, { method: "PUT", body, headers });
}

export async function ntfyPublishOk(
  base: string,
  topic: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<NtfyEvent> {
  const response = await ntfyPublish(base, topic, body, headers);
  if (response.status !== 200) throw new Error(`publish answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as NtfyEvent;
}
