import WebSocket from "ws";
import { StreamClient } from "./clients.js";
import { until } from "./until.js";

export type ReaderTransport = "sse" | "ndjson" | "ws";
export const READER_TRANSPORTS: readonly ReaderTransport[] = ["sse", "ndjson", "ws"];

export interface ReaderOptions {
  readonly reader?: string;
  readonly presence?: boolean;
  readonly unread?: boolean;
  readonly cursor?: string;
  readonly headers?: Record<string, string>;
  /** More query parameters (SSE, ndjson) or subscribe frame fields (WebSocket): tags, priority, key, mode. */
  readonly params?: Record<string, string>;
}

/** One subscription's frames as `{type, ...}` objects, whatever the transport. */
export interface ReaderClient {
  frames(): Record<string, unknown>[];
  /** Frames of one type (presence events: "presence", "join", "leave"). */
  of(type: string): Record<string, unknown>[];
  until(predicate: (client: ReaderClient) => boolean, what: string): Promise<void>;
  close(): void;
}

function client(frames: () => Record<string, unknown>[], close: () => void): ReaderClient {
  const self: ReaderClient = {
    frames,
    of: (type) => frames().filter((frame) => frame.type === type),
    until: (predicate, what) => until(() => predicate(self), what),
    close,
  };
  return self;
}

/** Opens a live subscription with the reader options on SSE, ndjson or a WebSocket subscribe frame. */
export async function openReader(
  transport: ReaderTransport,
  base: string,
  mailboxes: readonly string[],
  options: ReaderOptions = {},
): Promise<ReaderClient> {
  if (transport === "ws") return openWs(base, mailboxes, options);
  const query = new URLSearchParams();
  for (const mailbox of mailboxes) query.append("mailbox", mailbox);
  if (options.reader) query.set("reader", options.reader);
  if (options.presence) query.set("presence", "1");
  if (options.unread) query.set("unread", "1");
  if (options.cursor) query.set("cursor", options.cursor);
  for (const [name, value] of Object.entries(options.params ?? {})) query.set(name, value);
  const stream = new StreamClient(`${base}/v1/${transport === "sse" ? "events" : "stream"}?${query}`, options.headers);
  await stream.opened;
  if (stream.status !== 200) throw new Error(`stream refused: ${stream.status}`);
  // SSE data carries the ndjson objects; a message's names its type only in the `event:` line.
  const frames = () =>
    transport === "ndjson"
      ? stream.objects
      : stream.events.map((event) => {
          const data = JSON.parse(event.data) as Record<string, unknown>;
          return { ...data, type: data.type ?? event.event };
        });
  return client(frames, () => stream.close());
}

async function openWs(base: string, mailboxes: readonly string[], options: ReaderOptions): Promise<ReaderClient> {
  const socket = new WebSocket(`${base.replace(/^http/, "ws")}/v1/ws`, { headers: options.headers ?? {} });
  const frames: Record<string, unknown>[] = [];
  socket.on("message", (data) => frames.push(JSON.parse(String(data)) as Record<string, unknown>));
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  socket.send(
    JSON.stringify({
      type: "subscribe",
      mailboxes,
      ...(options.cursor ? { cursor: options.cursor } : {}),
      ...(options.reader ? { reader: options.reader } : {}),
      ...(options.presence ? { presence: true } : {}),
      ...(options.unread ? { unread: true } : {}),
      ...options.params,
    }),
  );
  await until(() => frames.some((frame) => frame.type === "subscribed" || frame.type === "error"), "subscribed");
  const error = frames.find((frame) => frame.type === "error");
  if (error) throw new Error(`subscribe refused: ${JSON.stringify(error)}`);
  return client(
    () => frames,
    () => socket.terminate(),
  );
}
