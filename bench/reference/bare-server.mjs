// The bare baseline: node:http doing the least work Herald's API allows, so a
// bench can say how close Herald comes to the runtime's own limit. It speaks
// just enough of Herald's wire format for the benches' clients (cursor = seq):
//   POST /v1/mailboxes/{m}/messages          parse the JSON, keep it, answer 201 with it
//   GET  /v1/mailboxes/{m}/messages?cursor=&wait=  long-poll: what follows the cursor, or hold
//   GET  /v1/mailboxes/{m}/events             SSE: every message from now on
// No auth, logs, limits, filters, heartbeats or ids worth the name: that is the point.
// Plain JavaScript so it runs on bare `node`, with no loader in its memory.
import { createServer } from "node:http";

const RETAINED = 1000;
const MAX_BODY_BYTES = 64 * 1024;

/** @type {Map<string, { seq: number, messages: string[], waiters: Set<Function>, streams: Set<import("node:http").ServerResponse> }>} */
const mailboxes = new Map();

function mailbox(name) {
  let found = mailboxes.get(name);
  if (found === undefined) {
    found = { seq: 0, messages: [], waiters: new Set(), streams: new Set() };
    mailboxes.set(name, found);
  }
  return found;
}

function messagesAfter(box, cursor) {
  const first = box.seq - box.messages.length + 1;
  return box.messages.slice(Math.max(0, cursor + 1 - first));
}

function answerPoll(response, box, cursor) {
  const messages = messagesAfter(box, cursor);
  const body = `{"messages":[${messages.join(",")}],"cursor":"${messages.length > 0 ? box.seq : cursor}","gap":false}`;
  response.writeHead(200, { "content-type": "application/json" }).end(body);
}

function publish(request, response, name) {
  const chunks = [];
  let size = 0;
  request.on("data", (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) request.destroy();
    else chunks.push(chunk);
  });
  request.on("end", () => {
    let fields;
    try {
      fields = JSON.parse(Buffer.concat(chunks).toString());
    } catch {
      response.writeHead(400, { "content-type": "application/json" }).end('{"error":"bad json"}');
      return;
    }
    const box = mailbox(name);
    box.seq += 1;
    const json = JSON.stringify({ id: String(box.seq), mailbox: name, seq: box.seq, time: Date.now(), ...fields });
    box.messages.push(json);
    if (box.messages.length > RETAINED) box.messages.shift();
    response.writeHead(201, { "content-type": "application/json" }).end(json);
    const frame = `id: ${box.seq}\nevent: message\ndata: ${json}\n\n`;
    for (const stream of box.streams) stream.write(frame);
    for (const wake of box.waiters) wake();
  });
}

function poll(response, box, query) {
  const cursorText = query.get("cursor");
  const cursor = cursorText === null ? 0 : cursorText === "now" ? box.seq : Number(cursorText);
  const waitMs = Number(query.get("wait") ?? 0) * 1000;
  if (box.seq > cursor || waitMs === 0) return answerPoll(response, box, cursor);
  const wake = () => {
    clearTimeout(timer);
    box.waiters.delete(wake);
    answerPoll(response, box, cursor);
  };
  const timer = setTimeout(wake, waitMs);
  box.waiters.add(wake);
  response.on("close", () => {
    clearTimeout(timer);
    box.waiters.delete(wake);
  });
}

function stream(response, box) {
  response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  response.write(`event: cursor\nid: ${box.seq}\ndata: {}\n\n`);
  box.streams.add(response);
  response.on("close", () => box.streams.delete(response));
}

const server = createServer((request, response) => {
  const url = new URL(request.url ?? "/", "http://bare");
  const match = /^\/v1\/mailboxes\/([^/]+)\/(messages|events)$/.exec(url.pathname);
  if (match === null) {
    response.writeHead(404).end();
    return;
  }
  const name = decodeURIComponent(match[1]);
  if (request.method === "POST" && match[2] === "messages") publish(request, response, name);
  else if (request.method === "GET" && match[2] === "messages") poll(response, mailbox(name), url.searchParams);
  else if (request.method === "GET") stream(response, mailbox(name));
  else response.writeHead(405).end();
});
// Long-lived responses must outlive Node's request timeouts, as Herald's do.
server.requestTimeout = 0;
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  const { port } = server.address();
  console.log(`Bare listening on http://127.0.0.1:${port}`);
});
