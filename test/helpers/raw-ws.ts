import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { until } from "./until.js";

/** One frame as the server sent it. */
export interface RawFrame {
  readonly opcode: number;
  readonly payload: Buffer;
}

export const OPCODE_TEXT = 1;
export const OPCODE_CLOSE = 8;

/**
 * A WebSocket client written over a bare TCP socket, so a test can do what a
 * well-behaved library never would: ignore the server's close frame and go on
 * sending frames. It answers nothing on its own (no pongs, no close replies).
 */
export class RawWebSocket {
  readonly frames: RawFrame[] = [];
  status = 0;
  head = "";
  closed = false;
  readonly #socket: Socket;
  #buffer = Buffer.alloc(0);
  #upgraded = false;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("close", () => {
      this.closed = true;
    });
    socket.on("error", () => {});
  }

  /** Sends the handshake; resolves once the server answered its head (101 or a refusal). */
  static async open(port: number, path: string, headers: Record<string, string> = {}): Promise<RawWebSocket> {
    const socket = connect(port, "127.0.0.1");
    const client = new RawWebSocket(socket);
    const lines = [
      `GET ${path} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}`,
      "Sec-WebSocket-Version: 13",
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    ];
    socket.write(`${lines.join("\r\n")}\r\n\r\n`);
    await until(() => client.status !== 0 || client.closed, "the handshake answer");
    return client;
  }

  texts(): string[] {
    return this.frames.filter((frame) => frame.opcode === OPCODE_TEXT).map((frame) => frame.payload.toString("utf8"));
  }

  /** A masked text frame, as a client must send it. */
  sendText(text: string): void {
    const payload = Buffer.from(text, "utf8");
    const mask = randomBytes(4);
    const length = payload.length;
    const head =
      length < 126 ? Buffer.from([0x81, 0x80 | length]) : Buffer.from([0x81, 0x80 | 126, length >> 8, length & 0xff]);
    const masked = Buffer.alloc(length);
    for (let i = 0; i < length; i++) masked[i] = (payload[i] as number) ^ (mask[i % 4] as number);
    if (!this.#socket.destroyed) this.#socket.write(Buffer.concat([head, mask, masked]));
  }

  destroy(): void {
    this.#socket.destroy();
  }

  #onData(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    if (!this.#upgraded) {
      const end = this.#buffer.indexOf("\r\n\r\n");
      if (end === -1) return;
      this.head = this.#buffer.subarray(0, end).toString("latin1");
      this.status = Number(/^HTTP\/1\.1 (\d{3})/.exec(this.head)?.[1] ?? 0);
      this.#buffer = this.#buffer.subarray(end + 4);
      this.#upgraded = this.status === 101;
      if (!this.#upgraded) return;
    }
    for (;;) {
      if (this.#buffer.length < 2) return;
      const opcode = (this.#buffer[0] as number) & 0x0f;
      let length = (this.#buffer[1] as number) & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (this.#buffer.length < 4) return;
        length = this.#buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (this.#buffer.length < 10) return;
        length = Number(this.#buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.#buffer.length < offset + length) return;
      this.frames.push({ opcode, payload: this.#buffer.subarray(offset, offset + length) });
      this.#buffer = this.#buffer.subarray(offset + length);
    }
  }
}
