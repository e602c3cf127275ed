import { Agent, type ClientRequest, type IncomingMessage, request } from "node:http";
import WebSocket from "ws";

/**
 * The soak's subscribers, one class per transport, each checking every `seq`
 * of its one mailbox against the delivery contract across its reconnects.
 */

export type Transport = "sse" | "ndjson" | "ws" | "long-poll";

export interface SoakNode {
  readonly host: string;
  readonly port: number;
}

/** What one subscriber saw of its mailbox, in order. */
export class SeqLedger {
  /** Last seq received; 0 before the first. */
  last = 0;
  received = 0;
  /** Seqs at or below one already received: a repeat or out of order. */
  repeated = 0;
  /** Seqs jumped over with no gap frame before the jump: silent losses. */
  skipped = 0;
  /** Seqs jumped over right after a gap frame: losses said out loud. */
  excused = 0;
  gaps = 0;
  /** Gap reasons the server gave (`expired`, `trimmed`, `epoch`), counted. */
  readonly gapReasons: Record<string, number> = {};
  #gapPending = false;

  message(seq: number): void {
    if (seq <= this.last) {
      this.repeated += 1;
      return;
    }
    const jumped = seq - this.last - 1;
    if (jumped > 0) {
      if (this.#gapPending) this.excused += jumped;
      else this.skipped += jumped;
    }
    this.#gapPending = false;
    this.last = seq;
    this.received += 1;
  }

  gap(reasons: readonly string[] = ["unknown"]): void {
    for (const reason of reasons) this.gapReasons[reason] = (this.gapReasons[reason] ?? 0) + 1;
    this.gaps += 1;
    this.#gapPending = true;
  }

  /** Acknowledged seqs up to `head` this subscriber neither got nor was told it missed. */
  lost(head: number): number {
    return this.skipped + Math.max(0, head - this.last);
  }
}

/** Delay before a subscriber whose stream the server ended comes back, as EventSource's retry. */
const RETRY_AFTER_END_MS = 250;
/** Delay before retrying a refused or failed connection. */
const RETRY_AFTER_ERROR_MS = 1000;
/** A long-poll's wait, shorter than the server's inactivity timeout. */
const LONG_POLL_WAIT_SECONDS = 20;
/** Most text one stream may leave unparsed (a frame without its end), so a broken stream cannot grow it. */
const MAX_PENDING_TEXT = 4 * 1024 * 1024;

interface WireFrame {
  type?: string;
  gaps?: { reason: string }[];
  seq?: number;
  cursor?: string;
}

export abstract class SoakSubscriber {
  readonly ledger = new SeqLedger();
  cursor: string | undefined;
  connects = 0;
  /** Streams the server ended (a cut, a drain) or that failed; each one resumed from the cursor. */
  endedByServer = 0;
  failures = 0;
  /** The client chose to drop (churn or the run's end): an end that follows is not the server's. */
  protected dropping = false;
  #retryTimer: NodeJS.Timeout | undefined;
  stopped = false;

  constructor(
    readonly index: number,
    readonly transport: Transport,
    readonly mailbox: string,
    private readonly pickNode: (subscriber: SoakSubscriber) => SoakNode,
  ) {}

  /** Opens (or reopens) the subscription from the cursor held, on the node the picker chooses. */
  open(): void {
    if (this.stopped) return;
    this.dropping = false;
    this.connects += 1;
    this.connect(this.pickNode(this));
  }

  /** Drops the connection and resumes at once from the cursor: one churn. */
  churn(): void {
    if (this.stopped || this.#retryTimer !== undefined) return;
    this.dropping = true;
    this.disconnect();
    this.open();
  }

  stop(): void {
    this.stopped = true;
    this.dropping = true;
    clearTimeout(this.#retryTimer);
    this.disconnect();
  }

  protected abstract connect(node: SoakNode): void;
  protected abstract disconnect(): void;

  /** The transport saw its connection end or fail without the client asking. */
  protected ended(failed: boolean): void {
    if (this.dropping || this.stopped || this.#retryTimer !== undefined) return;
    if (failed) this.failures += 1;
    else this.endedByServer += 1;
    this.disconnect();
    this.#retryTimer = setTimeout(
      () => {
        this.#retryTimer = undefined;
        this.open();
      },
      failed ? RETRY_AFTER_ERROR_MS : RETRY_AFTER_END_MS,
    );
  }

  protected frame(frame: WireFrame, cursor: string | undefined): void {
    if (frame.type === "message" || (frame.type === undefined && typeof frame.seq === "number")) {
      this.ledger.message(frame.seq as number);
    } else if (frame.type === "gap") {
      this.ledger.gap(frame.gaps?.map((gap) => gap.reason));
    }
    const next = cursor ?? frame.cursor;
    if (next !== undefined) this.cursor = next;
  }

  protected query(): string {
    return this.cursor === undefined ? "" : `cursor=${this.cursor}`;
  }
}

const agentless = { agent: false as const };

/** SSE or JSON lines over one HTTP response, read as it comes. */
export class StreamSubscriber extends SoakSubscriber {
  #request: ClientRequest | undefined;
  #response: IncomingMessage | undefined;
  #pending = "";

  protected connect(node: SoakNode): void {
    const kind = this.transport === "sse" ? "events" : "stream";
    const query = this.query();
    const path = `/v1/mailboxes/${encodeURIComponent(this.mailbox)}/${kind}${query ? `?${query}` : ""}`;
    this.#pending = "";
    const req = request({ ...agentless, host: node.host, port: node.port, path, method: "GET" });
    this.#request = req;
    // A reset after the stream began is the server ending it (a cut stalled consumer's connection,
    // orphaned by the server's kernel, ends so); before, the connection failed.
    req.on("error", () => {
      if (this.#request === req) this.ended(this.#response === undefined);
    });
    req.on("response", (response) => {
      if (this.#request !== req) return response.destroy();
      if (response.statusCode !== 200) {
        response.resume();
        return this.ended(true);
      }
      this.#response = response;
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => this.#read(chunk));
      response.on("end", () => {
        if (this.#request === req) this.ended(false);
      });
      response.on("error", () => {
        if (this.#request === req) this.ended(false);
      });
    });
    req.end();
  }

  protected disconnect(): void {
    const req = this.#request;
    this.#request = undefined;
    this.#response = undefined;
    req?.destroy();
  }

  /** Stops reading: what the server sends backs up in the kernel, then in the server's queue. */
  pause(): void {
    this.#response?.pause();
  }

  resume(): void {
    this.#response?.resume();
  }

  #read(chunk: string): void {
    this.#pending += chunk;
    const separator = this.transport === "sse" ? "\n\n" : "\n";
    let start = 0;
    for (let end = this.#pending.indexOf(separator); end !== -1; end = this.#pending.indexOf(separator, start)) {
      const block = this.#pending.slice(start, end);
      start = end + separator.length;
      if (this.transport === "sse") this.#sseEvent(block);
      else if (block.length > 0) this.frame(JSON.parse(block) as WireFrame, undefined);
    }
    this.#pending = this.#pending.slice(start);
    if (this.#pending.length > MAX_PENDING_TEXT) throw new Error(`${this.transport} frame over ${MAX_PENDING_TEXT}`);
  }

  #sseEvent(block: string): void {
    let id: string | undefined;
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("id: ")) id = line.slice(4);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    if (data.length > 0) this.frame(JSON.parse(data) as WireFrame, id);
    else if (id !== undefined) this.cursor = id;
  }
}

/** One subscription on a WebSocket of its own. */
export class WebSocketSubscriber extends SoakSubscriber {
  #socket: WebSocket | undefined;

  protected connect(node: SoakNode): void {
    const socket = new WebSocket(`ws://${node.host}:${node.port}/v1/ws`, { perMessageDeflate: false });
    this.#socket = socket;
    socket.on("open", () => {
      const cursor = this.cursor === undefined ? {} : { cursor: this.cursor };
      socket.send(JSON.stringify({ type: "subscribe", mailboxes: [this.mailbox], ...cursor }));
    });
    socket.on("message", (data) => {
      if (this.#socket !== socket) return;
      const frame = JSON.parse(String(data)) as WireFrame;
      if (frame.type === "error") return this.ended(true);
      this.frame(frame, undefined);
    });
    socket.on("error", () => {
      if (this.#socket === socket) this.ended(true);
    });
    socket.on("close", () => {
      if (this.#socket === socket) this.ended(false);
    });
  }

  protected disconnect(): void {
    const socket = this.#socket;
    this.#socket = undefined;
    socket?.terminate();
  }
}

/** Keep-alive sockets for long-polls, one per poller at most. */
const longPollAgent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });

/** Polls `GET …/messages?wait=` from its cursor, again and again. */
export class LongPollSubscriber extends SoakSubscriber {
  #request: ClientRequest | undefined;

  protected connect(node: SoakNode): void {
    this.#poll(node);
  }

  #poll(node: SoakNode): void {
    const query = this.query();
    const path = `/v1/mailboxes/${encodeURIComponent(this.mailbox)}/messages?wait=${LONG_POLL_WAIT_SECONDS}&limit=1000${query ? `&${query}` : ""}`;
    const req = request({ agent: longPollAgent, host: node.host, port: node.port, path, method: "GET" });
    this.#request = req;
    req.on("error", () => {
      if (this.#request === req) this.ended(true);
    });
    req.on("response", (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        body += chunk;
      });
      response.on("error", () => {
        if (this.#request === req) this.ended(true);
      });
      response.on("end", () => {
        if (this.#request !== req) return;
        if (response.statusCode !== 200) return this.ended(true);
        const answer = JSON.parse(body) as {
          messages: WireFrame[];
          cursor: string;
          gap: boolean;
          gaps?: { reason: string }[];
        };
        if (answer.gap) this.ledger.gap(answer.gaps?.map((gap) => gap.reason));
        for (const message of answer.messages) this.frame({ ...message, type: "message" }, undefined);
        this.cursor = answer.cursor;
        this.#poll(node);
      });
    });
    req.end();
  }

  protected disconnect(): void {
    const req = this.#request;
    this.#request = undefined;
    req?.destroy();
  }
}

export function createSubscriber(
  index: number,
  transport: Transport,
  mailbox: string,
  pickNode: (subscriber: SoakSubscriber) => SoakNode,
): SoakSubscriber {
  if (transport === "ws") return new WebSocketSubscriber(index, transport, mailbox, pickNode);
  if (transport === "long-poll") return new LongPollSubscriber(index, transport, mailbox, pickNode);
  return new StreamSubscriber(index, transport, mailbox, pickNode);
}
