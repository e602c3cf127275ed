import { connect, type Socket } from "node:net";

/**
 * Many SSE subscribers over raw sockets: a lean client, so that the load
 * generator spends less CPU per event than the server does. It reads only
 * what the bench needs from each event (the mailbox `seq`, the publisher's
 * timestamp `t` in `data`, the `id:` cursor) and counts lost, repeated and
 * out-of-order messages per subscriber.
 */
export interface SwarmOptions {
  readonly host: string;
  readonly port: number;
  readonly count: number;
  /** Request path of subscriber `i`. */
  readonly path: (i: number) => string;
  /** Extra request headers of subscriber `i`, e.g. Last-Event-ID. */
  readonly headers?: (i: number) => string;
  /** Source addresses to spread the sockets over (127.0.0.x), past the ~28k ephemeral ports of one. */
  readonly localAddresses?: readonly string[];
  /** Connections being opened at once; more overflow the listen backlog. */
  readonly connectConcurrency?: number;
  /** Latency samples kept; the rest are counted but not sampled. */
  readonly maxSamples?: number;
  /** Payloads carry `data.t` (default); when false, latency is not sampled and nothing searches for it. */
  readonly timestamps?: boolean;
  /** Keep each subscriber's last `id:` (for resuming); off, nothing retains the text read. */
  readonly keepLastEventId?: boolean;
  /** Called with the time of every message received, after it is counted. */
  readonly onMessage?: (i: number, seq: number, now: number) => void;
  /**
   * Called with every message's text as read: `data` is where its `"seq":` stands in `text`
   * and `end` where the event ends, for a bench that reads more of the payload than `seq` and `t`.
   */
  readonly onMessageText?: (i: number, seq: number, text: string, data: number, end: number, now: number) => void;
  /**
   * Bytes per second subscriber `i` reads at most (undefined: as fast as it can). Such a
   * subscriber reads into its own small buffer and pauses its socket until its budget allows
   * the next read, so what it does not read backs up in the kernel and then in the server.
   */
  readonly readBytesPerSecond?: (i: number) => number | undefined;
  /** Counts `mode=latest` conflated notices and the messages they say were skipped. */
  readonly conflation?: boolean;
  /**
   * Every `data:` line is one message, numbered in arrival order (its `t` still read), for
   * payloads with no `seq` the server vouches for (Nchan relays bodies as published, and
   * publishes in flight at once arrive in any order): repeats and order are not checked.
   */
  readonly countDataLines?: boolean;
}

const DEFAULT_CONNECT_CONCURRENCY = 256;
const DEFAULT_MAX_SAMPLES = 2_000_000;
/** Longest one subscriber may take to get its response head. */
const CONNECT_TIMEOUT_MS = 30_000;
/** One read buffer for every socket: each read is parsed before the next is taken. */
const SHARED_READ_BUFFER = Buffer.allocUnsafe(256 * 1024);
/** One read of a throttled subscriber takes at most this much, so its budget is kept read by read. */
const THROTTLED_READ_BUFFER = Buffer.allocUnsafe(4 * 1024);

export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Parses a non-negative decimal at `from` without allocating a substring. */
export function readNumber(text: string, from: number): number {
  let value = 0;
  let i = from;
  let code = text.charCodeAt(i);
  while (code >= 48 && code <= 57) {
    value = value * 10 + (code - 48);
    code = text.charCodeAt(++i);
  }
  if (code === 46) {
    let scale = 0.1;
    code = text.charCodeAt(++i);
    while (code >= 48 && code <= 57) {
      value += (code - 48) * scale;
      scale /= 10;
      code = text.charCodeAt(++i);
    }
  }
  return value;
}

export class SseSwarm {
  readonly options: SwarmOptions;
  readonly sockets: (Socket | undefined)[];
  readonly lastSeq: Int32Array;
  readonly received: Int32Array;
  readonly duplicates: Int32Array;
  readonly outOfOrder: Int32Array;
  readonly lastEventId: string[];
  readonly latencies: Float64Array;
  samples = 0;
  totalReceived = 0;
  gapEvents = 0;
  /** `event: presence` frames received (snapshots, joins, leaves, counts), over all subscribers. */
  presenceEvents = 0;
  /** Subscribers whose connection closed while the swarm still wanted it. */
  unexpectedCloses = 0;
  /** 1 for each subscriber whose connection closed while the swarm still wanted it. */
  readonly closedUnexpectedly: Uint8Array;
  /** With `conflation`: conflated notices each subscriber got, and the messages they said were skipped. */
  readonly conflatedNotices: Int32Array;
  readonly skipped: Int32Array;
  lastReceiveAt = 0;
  /** Called with every message received, after it is counted; may be replaced between phases. */
  onMessage: ((i: number, seq: number, at: number) => void) | undefined;
  #carry: string[];
  #headerDone: Uint8Array;
  #closing = false;

  constructor(options: SwarmOptions) {
    this.options = options;
    this.onMessage = options.onMessage;
    const n = options.count;
    this.sockets = new Array(n);
    this.lastSeq = new Int32Array(n);
    this.received = new Int32Array(n);
    this.duplicates = new Int32Array(n);
    this.outOfOrder = new Int32Array(n);
    this.lastEventId = new Array(n).fill("");
    this.latencies = new Float64Array(options.maxSamples ?? DEFAULT_MAX_SAMPLES);
    this.#carry = new Array(n).fill("");
    this.#headerDone = new Uint8Array(n);
    this.closedUnexpectedly = new Uint8Array(n);
    this.conflatedNotices = new Int32Array(n);
    this.skipped = new Int32Array(n);
  }

  /** Opens every subscriber and resolves once each has its 200 response head. */
  async open(): Promise<void> {
    const concurrency = this.options.connectConcurrency ?? DEFAULT_CONNECT_CONCURRENCY;
    let next = 0;
    const worker = async () => {
      while (next < this.options.count) {
        const i = next++;
        await this.openOne(i);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, this.options.count) }, worker));
  }

  openOne(i: number): Promise<void> {
    const { host, port, localAddresses } = this.options;
    const localAddress = localAddresses?.[i % localAddresses.length];
    this.#headerDone[i] = 0;
    this.#carry[i] = "";
    const bytesPerSecond = this.options.readBytesPerSecond?.(i);
    return new Promise<void>((resolve, reject) => {
      let opened = false;
      // The earliest time a throttled subscriber may read again.
      let readableAt = 0;
      // Reads land in one shared buffer and are parsed at once: no stream, 'data' event or Buffer per read.
      const onread = {
        buffer: bytesPerSecond === undefined ? SHARED_READ_BUFFER : THROTTLED_READ_BUFFER,
        callback: (bytes: number, buffer: Uint8Array) => {
          if (this.#onData(i, (buffer as Buffer).toString("latin1", 0, bytes)) && !opened) {
            opened = true;
            clearTimeout(timer);
            resolve();
          }
          if (bytesPerSecond !== undefined) {
            const at = performance.now();
            readableAt = Math.max(readableAt, at) + (bytes * 1000) / bytesPerSecond;
            if (readableAt > at + 1) {
              socket.pause();
              setTimeout(() => {
                if (!socket.destroyed) socket.resume();
              }, readableAt - at);
            }
          }
          return true;
        },
      };
      const socket = connect(localAddress ? { host, port, localAddress, onread } : { host, port, onread });
      this.sockets[i] = socket;
      const timer = setTimeout(() => reject(new Error(`subscriber ${i} got no response head`)), CONNECT_TIMEOUT_MS);
      socket.once("connect", () => {
        const extra = this.options.headers?.(i) ?? "";
        socket.write(
          `GET ${this.options.path(i)} HTTP/1.1\r\nHost: ${host}:${port}\r\nAccept: text/event-stream\r\n${extra}\r\n`,
        );
      });
      socket.on("error", (error) => {
        clearTimeout(timer);
        if (!opened) reject(error);
      });
      socket.on("close", () => {
        clearTimeout(timer);
        if (!this.#closing && this.sockets[i] === socket) {
          this.unexpectedCloses += 1;
          this.closedUnexpectedly[i] = 1;
        }
        if (!opened) reject(new Error(`subscriber ${i} closed before its response head`));
      });
    });
  }

  /** Closes subscriber `i` on purpose (a resume test drops it). */
  drop(i: number): void {
    const socket = this.sockets[i];
    this.sockets[i] = undefined;
    socket?.destroy();
  }

  close(): void {
    this.#closing = true;
    for (let i = 0; i < this.sockets.length; i++) this.drop(i);
  }

  /** Messages each subscriber has not received, summed, when each should have `expected` (seq 1..expected). */
  lost(expected: number | ((i: number) => number)): number {
    let lost = 0;
    for (let i = 0; i < this.options.count; i++) {
      const want = typeof expected === "number" ? expected : expected(i);
      const unique = (this.received[i] as number) - (this.duplicates[i] as number);
      if (unique < want) lost += want - unique;
    }
    return lost;
  }

  /** True once every subscriber holds at least `count` distinct messages. */
  allHave(count: number): boolean {
    for (let i = 0; i < this.options.count; i++) {
      if ((this.received[i] as number) - (this.duplicates[i] as number) < count) return false;
    }
    return true;
  }

  sum(array: Int32Array): number {
    let total = 0;
    for (const value of array) total += value;
    return total;
  }

  sortedLatencies(): Float64Array {
    return this.latencies.slice(0, this.samples).sort();
  }

  /** Waits until `done()` holds or `timeoutMs` passes; resolves true when it held. */
  async until(done: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (!done()) {
      if (performance.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return true;
  }

  /** Returns true once the response head has been read. */
  #onData(i: number, chunk: string): boolean {
    const carry = this.#carry[i] as string;
    let text = carry.length > 0 ? carry + chunk : chunk;
    if (this.#headerDone[i] === 0) {
      const head = text.indexOf("\r\n\r\n");
      if (head < 0) {
        this.#carry[i] = text;
        return false;
      }
      if (!text.startsWith("HTTP/1.1 200")) {
        this.#carry[i] = "";
        this.sockets[i]?.destroy(new Error(`subscriber ${i}: ${text.slice(0, text.indexOf("\r\n"))}`));
        return false;
      }
      this.#headerDone[i] = 1;
      text = text.slice(head + 4);
    }
    // Chunked framing sits between writes, and the server writes whole events: parse up to the last event end.
    const end = text.lastIndexOf("\n\n");
    if (end < 0) {
      this.#carry[i] = text;
      return true;
    }
    this.#carry[i] = end + 2 < text.length ? text.slice(end + 2) : "";
    const at = now();
    // Only the last id matters to a client that resumes; slicing every one would cost more than the server's write.
    if (this.options.keepLastEventId) {
      const idAt = text.lastIndexOf("id: ", end);
      // A slice would keep the whole read alive; a Buffer round trip copies just the id.
      if (idAt >= 0) this.lastEventId[i] = Buffer.from(text.slice(idAt + 4, text.indexOf("\n", idAt))).toString();
    }
    let gapAt = text.indexOf("event: gap");
    while (gapAt >= 0 && gapAt < end) {
      this.gapEvents += 1;
      gapAt = text.indexOf("event: gap", gapAt + 10);
    }
    let presenceAt = text.indexOf("event: presence");
    while (presenceAt >= 0 && presenceAt < end) {
      this.presenceEvents += 1;
      presenceAt = text.indexOf("event: presence", presenceAt + 15);
    }
    if (this.options.conflation) this.#countConflated(i, text, end);
    if (this.options.countDataLines) {
      this.#countDataLines(i, text, end, at);
      return true;
    }
    const timestamps = this.options.timestamps !== false;
    let pos = 0;
    for (;;) {
      const seqAt = text.indexOf('"seq":', pos);
      if (seqAt < 0 || seqAt > end) break;
      const seq = readNumber(text, seqAt + 6);
      const eventEnd = text.indexOf("\n\n", seqAt);
      // Only when payloads carry `t`: a search that finds none would scan the rest of the read.
      const tAt = timestamps ? text.indexOf('"t":', seqAt) : -1;
      const sent = tAt < 0 || tAt > eventEnd ? Number.NaN : readNumber(text, tAt + 4);
      pos = eventEnd;
      this.#record(i, seq, sent, at);
      this.options.onMessageText?.(i, seq, text, seqAt, eventEnd, at);
    }
    return true;
  }

  #countDataLines(i: number, text: string, end: number, at: number): void {
    const timestamps = this.options.timestamps !== false;
    for (let dataAt = text.indexOf("data: "); dataAt >= 0 && dataAt < end; ) {
      const next = text.indexOf("data: ", dataAt + 6);
      const tAt = timestamps ? text.indexOf('"t":', dataAt) : -1;
      const sent = tAt < 0 || tAt > end || (next >= 0 && tAt > next) ? Number.NaN : readNumber(text, tAt + 4);
      this.#record(i, (this.lastSeq[i] as number) + 1, sent, at);
      dataAt = next;
    }
  }

  #countConflated(i: number, text: string, end: number): void {
    let at = text.indexOf("event: conflated");
    while (at >= 0 && at < end) {
      this.conflatedNotices[i] = (this.conflatedNotices[i] as number) + 1;
      const skippedAt = text.indexOf('"skipped":', at);
      if (skippedAt >= 0) this.skipped[i] = (this.skipped[i] as number) + readNumber(text, skippedAt + 10);
      at = text.indexOf("event: conflated", at + 16);
    }
  }

  #record(i: number, seq: number, sent: number, at: number): void {
    const last = this.lastSeq[i] as number;
    if (seq <= last) this.duplicates[i] = (this.duplicates[i] as number) + 1;
    else {
      if (seq !== last + 1) this.outOfOrder[i] = (this.outOfOrder[i] as number) + 1;
      this.lastSeq[i] = seq;
    }
    this.received[i] = (this.received[i] as number) + 1;
    this.totalReceived += 1;
    this.lastReceiveAt = at;
    if (!Number.isNaN(sent) && this.samples < this.latencies.length) this.latencies[this.samples++] = at - sent;
    this.onMessage?.(i, seq, at);
  }
}
