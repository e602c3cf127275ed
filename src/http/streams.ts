import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import type { CloseReason, FrameFormat, StreamSink } from "../core/delivery.js";
import type { Hub } from "../core/hub.js";
import type { Subscription } from "../core/subscription.js";
import {
  NDJSON_AUTH_EXPIRED,
  NDJSON_FORMAT,
  NDJSON_HEARTBEAT,
  ndjsonOpening,
  SSE_AUTH_EXPIRED,
  SSE_FORMAT,
  SSE_HEARTBEAT,
  sseOpening,
} from "./frame-formats.js";

export type StreamKind = "sse" | "ndjson";

/** Heartbeats written before the heartbeat loop yields to the event loop. */
const HEARTBEAT_CHUNK_SIZE = 1000;

/**
 * The last text framed for the socket, as bytes. During a fan-out round every
 * subscriber at the same position is handed the same string, so it is encoded
 * (and chunk-framed) once per round instead of once per subscriber.
 */
interface EncodedFrames {
  text: string;
  chunked: boolean;
  bytes: Buffer;
}

const lastEncoded: EncodedFrames = { text: "", chunked: false, bytes: Buffer.alloc(0) };

function encodeFrames(text: string, chunked: boolean): Buffer {
  if (lastEncoded.text === text && lastEncoded.chunked === chunked) return lastEncoded.bytes;
  const length = Buffer.byteLength(text);
  let bytes: Buffer;
  if (chunked) {
    // HTTP/1.1 chunked framing, written here because the frames bypass ServerResponse.
    const head = `${length.toString(16)}\r\n`;
    bytes = Buffer.allocUnsafe(head.length + length + 2);
    bytes.write(head, 0, "latin1");
    bytes.write(text, head.length, "utf8");
    bytes.write("\r\n", head.length + length, "latin1");
  } else {
    bytes = Buffer.from(text);
  }
  lastEncoded.text = text;
  lastEncoded.chunked = chunked;
  lastEncoded.bytes = bytes;
  return bytes;
}

/**
 * A streaming response written straight to Node's socket, without a web
 * stream per connection. Once the head is out, frames go to the socket as
 * pre-encoded bytes: ServerResponse.write would cork, schedule an uncork and
 * re-encode the same text for each of 10,000 subscribers.
 */
class NodeStreamSink implements StreamSink {
  readonly format: FrameFormat;
  readonly kind: StreamKind;
  readonly response: ServerResponse;
  subscription: Subscription | undefined;
  #socket: Socket | undefined;
  #chunked = false;
  #ended = false;

  constructor(kind: StreamKind, response: ServerResponse) {
    this.kind = kind;
    this.format = kind === "sse" ? SSE_FORMAT : NDJSON_FORMAT;
    this.response = response;
  }

  get ended(): boolean {
    return this.#ended || this.response.destroyed;
  }

  /** Called once the head and first bytes are written through the response. */
  goDirect(): void {
    const socket = this.response.socket;
    // Only while this response owns the socket (Node sets it then), so bytes keep their order.
    if (socket && !socket.destroyed && this.response.headersSent) {
      this.#socket = socket;
      this.#chunked = (this.response as ServerResponse & { chunkedEncoding?: boolean }).chunkedEncoding === true;
    }
  }

  write(frames: string): void {
    if (this.ended) return;
    const socket = this.#socket;
    if (socket && !socket.destroyed) socket.write(encodeFrames(frames, this.#chunked));
    else this.response.write(frames);
  }

  bufferedBytes(): number {
    // Counts the socket's queue too.
    return this.response.writableLength;
  }

  whenDrained(): Promise<void> {
    const emitter = this.#socket ?? this.response;
    // Only a write that returned false is followed by 'drain'; otherwise there is nothing to wait for.
    if (this.ended || !emitter.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        emitter.off("drain", done);
        emitter.off("close", done);
        resolve();
      };
      emitter.once("drain", done);
      emitter.once("close", done);
    });
  }

  end(reason: CloseReason): void {
    if (this.ended) return;
    this.#ended = true;
    // A slow consumer's queue cannot flush; cut it. Otherwise end cleanly so the client reconnects.
    if (reason === "slow-consumer") this.response.destroy();
    else this.response.end();
  }
}

/**
 * Node keeps the head it sent as a rope of ~30 string pieces (~1.3 KB) for as
 * long as the response lives; a stream lives for hours, so keep one flat copy.
 */
function flattenSentHead(response: ServerResponse): void {
  const sent = response as ServerResponse & { _header?: unknown };
  if (typeof sent._header === "string") sent._header = Buffer.from(sent._header, "latin1").toString("latin1");
}

export interface OpenStreamOptions {
  readonly kind: StreamKind;
  readonly mailboxes: readonly string[];
  readonly cursor: string | undefined;
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  /** Epoch ms when the caller's token expires; the stream ends then with an auth-expired frame. */
  readonly expiresAt?: number | undefined;
}

/** setTimeout's ceiling (~24.8 days); a later expiry ends the stream early and the client simply renews. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Every open streaming response. One timer writes heartbeats to all of them;
 * draining ends them all.
 */
export class StreamRegistry {
  readonly #hub: Hub;
  readonly #sseRetryMs: number;
  readonly #streams = new Set<NodeStreamSink>();
  readonly #timer: NodeJS.Timeout;
  #beating = false;

  constructor(hub: Hub, heartbeatSeconds: number, sseRetryMs: number) {
    this.#hub = hub;
    this.#sseRetryMs = sseRetryMs;
    this.#timer = setInterval(() => void this.#heartbeat(), heartbeatSeconds * 1000);
    this.#timer.unref();
  }

  get size(): number {
    return this.#streams.size;
  }

  countByKind(): Record<StreamKind, number> {
    const counts: Record<StreamKind, number> = { sse: 0, ndjson: 0 };
    for (const stream of this.#streams) counts[stream.kind] += 1;
    return counts;
  }

  /** Subscribes (which validates the cursor and may throw), then writes the head and starts replay. */
  async open(options: OpenStreamOptions): Promise<void> {
    const { request, response, kind } = options;
    const sink = new NodeStreamSink(kind, response);
    const subscription = await this.#hub.subscribe(options.mailboxes, options.cursor, sink);
    if (request.destroyed || response.destroyed) {
      subscription.close();
      return;
    }
    sink.subscription = subscription;
    this.#streams.add(sink);
    response.on("close", () => {
      this.#streams.delete(sink);
      subscription.close();
    });
    request.socket.setTimeout(0);
    request.socket.setNoDelay(true);
    response.writeHead(200, {
      "Content-Type": kind === "sse" ? "text/event-stream; charset=utf-8" : "application/x-ndjson",
      "Cache-Control": "no-cache",
      "X-Accel-Buffering": "no",
    });
    // The first bytes flush the head through proxies and tell EventSource how soon to come back.
    const cursor = subscription.cursor;
    response.write(kind === "sse" ? sseOpening(this.#sseRetryMs, cursor) : ndjsonOpening(cursor));
    flattenSentHead(response);
    sink.goDirect();
    subscription.start();
    if (options.expiresAt !== undefined) {
      const expiry = setTimeout(
        () => {
          sink.write(kind === "sse" ? SSE_AUTH_EXPIRED : NDJSON_AUTH_EXPIRED);
          sink.end("draining");
        },
        Math.min(MAX_TIMER_MS, Math.max(0, options.expiresAt - Date.now())),
      );
      response.once("close", () => clearTimeout(expiry));
    }
  }

  /** Ends every stream cleanly; clients reconnect elsewhere with their cursor. */
  endAll(): void {
    for (const sink of this.#streams) {
      sink.end("draining");
      sink.subscription?.close();
    }
    this.#streams.clear();
  }

  close(): void {
    clearInterval(this.#timer);
    this.endAll();
  }

  async #heartbeat(): Promise<void> {
    if (this.#beating) return;
    this.#beating = true;
    try {
      let written = 0;
      for (const sink of this.#streams) {
        sink.write(sink.kind === "sse" ? SSE_HEARTBEAT : NDJSON_HEARTBEAT);
        if (++written % HEARTBEAT_CHUNK_SIZE === 0) await yieldToLoop();
      }
    } finally {
      this.#beating = false;
    }
  }
}
