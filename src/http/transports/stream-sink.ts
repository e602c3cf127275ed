import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { CloseReason } from "../../core/delivery.js";
import type { Caller } from "../middleware/caller.js";
import type { Connection } from "./connection.js";
import { JSON_LINES_FORMAT, SSE_FORMAT, type WireFormat } from "./frame-formats.js";

export type StreamKind = "sse" | "ndjson";

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
 * Node keeps the head it sent as a rope of ~30 string pieces (~1.3 KB) for as
 * long as the response lives; a stream lives for hours, so keep one flat copy.
 */
function flattenSentHead(response: ServerResponse): void {
  const sent = response as ServerResponse & { _header?: unknown };
  if (typeof sent._header === "string") sent._header = Buffer.from(sent._header, "latin1").toString("latin1");
}

/**
 * An SSE or JSON-lines response as a Connection, written straight to Node's
 * socket without a web stream per connection. Once the head is out, frames go
 * to the socket as pre-encoded bytes: ServerResponse.write would cork, schedule
 * an uncork and re-encode the same text for each of 10,000 subscribers.
 */
export class StreamSink implements Connection {
  readonly format: WireFormat;
  readonly kind: StreamKind;
  readonly caller: Caller;
  readonly #response: ServerResponse;
  #socket: Socket | undefined;
  #chunked = false;
  #ended = false;

  /** `format` replaces the kind's own (a protocol adapter's frames on the same transport). */
  constructor(kind: StreamKind, response: ServerResponse, caller: Caller, format?: WireFormat) {
    this.kind = kind;
    this.format = format ?? (kind === "sse" ? SSE_FORMAT : JSON_LINES_FORMAT);
    this.#response = response;
    this.caller = caller;
  }

  get closed(): boolean {
    return this.#ended || this.#response.destroyed;
  }

  /** Writes the head (with `headers` besides its own) and the opening frame, then switches to writing on the socket directly. */
  open(cursor: string, sseRetryMs: number, headers: Record<string, string> = {}): void {
    const response = this.#response;
    response.socket?.setTimeout(0);
    response.socket?.setNoDelay(true);
    response.writeHead(200, {
      "Content-Type":
        this.format.contentType ?? (this.kind === "sse" ? "text/event-stream; charset=utf-8" : "application/x-ndjson"),
      "Cache-Control": "no-cache",
      "X-Accel-Buffering": "no",
      ...headers,
    });
    // The first bytes flush the head through proxies and tell EventSource how soon to come back.
    response.write(this.format.opening(cursor, sseRetryMs));
    flattenSentHead(response);
    const socket = response.socket;
    // Only while this response owns the socket (Node sets it then), so bytes keep their order.
    if (socket && !socket.destroyed && response.headersSent) {
      this.#socket = socket;
      this.#chunked = (response as ServerResponse & { chunkedEncoding?: boolean }).chunkedEncoding === true;
    }
  }

  write(frames: string): void {
    // An empty chunk would end a chunked response; formats with nothing to say for an event frame it as "".
    if (this.closed || frames.length === 0) return;
    const socket = this.#socket;
    if (socket && !socket.destroyed) socket.write(encodeFrames(frames, this.#chunked));
    else this.#response.write(frames);
  }

  bufferedBytes(): number {
    // Counts the socket's queue too.
    return this.#response.writableLength;
  }

  whenDrained(): Promise<void> {
    const emitter = this.#socket ?? this.#response;
    // Only a write that returned false is followed by 'drain'; otherwise there is nothing to wait for.
    if (this.closed || !emitter.writableNeedDrain) return Promise.resolve();
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

  heartbeat(): void {
    this.write(this.format.heartbeat);
  }

  end(reason: CloseReason): void {
    if (this.closed) return;
    if (reason === "auth-expired") this.write(this.format.authExpired);
    this.#ended = true;
    // A slow consumer's queue cannot flush; cut it. Otherwise end cleanly so the client reconnects.
    if (reason === "slow-consumer") this.#response.destroy();
    else this.#response.end();
  }

  onClose(listener: () => void): void {
    if (this.#response.destroyed) queueMicrotask(listener);
    else this.#response.once("close", listener);
  }
}
