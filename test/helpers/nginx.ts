import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { type ClientHttp2Session, connect as connectHttp2 } from "node:http2";
import { connect as connectTcp } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./redis.js";

/** Debian's nginx; .ci/run installs it from apt when missing. */
export const NGINX = "/usr/sbin/nginx";
export const HAVE_NGINX = existsSync(NGINX);
/** The recipe users copy; the tests run exactly this file with local ports, paths and certificate. */
export const RECIPE = new URL("../../deploy/nginx.conf", import.meta.url);

const START_MS = 15_000;
const STOP_MS = 10_000;

/** A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI. */
export function makeCertificate(dir: string): { cert: string; key: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "2",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ],
    { stdio: "pipe" },
  );
  return { cert, key };
}

export interface RenderOptions {
  readonly dir: string;
  readonly httpsPort: number;
  readonly httpPort: number;
  readonly cert: string;
  readonly key: string;
  /** host:port of each Herald node. */
  readonly upstreams: readonly string[];
}

/** Replaces `from` (which must occur) with `to`: a recipe edit that stops matching fails the test. */
function replaceExact(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`deploy/nginx.conf no longer contains ${JSON.stringify(from)}`);
  return text.split(from).join(to);
}

/** The recipe with this run's ports, certificate, upstreams and a private prefix for pid, logs and temp files. */
export function renderRecipe(recipe: string, options: RenderOptions): string {
  const { dir } = options;
  const servers = options.upstreams.map((address) => `server ${address} max_fails=1 fail_timeout=5s;`).join("\n    ");
  const edits: [string, string][] = [
    // As root the master would hand workers to www-data, which cannot use the private temp dir.
    ["user www-data;", process.getuid?.() === 0 ? "user root;" : ""],
    ["worker_processes auto;", "worker_processes 1;"],
    ["worker_rlimit_nofile 65536;", ""],
    ["pid /run/nginx.pid;", `pid ${join(dir, "nginx.pid")};`],
    ["error_log /var/log/nginx/error.log warn;", `error_log ${join(dir, "error.log")} info;`],
    ["worker_connections 16384;", "worker_connections 1024;"],
    [
      "access_log /var/log/nginx/access.log;",
      [
        `access_log ${join(dir, "access.log")};`,
        ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map(
          (kind) => `${kind}_temp_path ${join(dir, `${kind}_temp`)};`,
        ),
      ].join("\n  "),
    ],
    ["server 127.0.0.1:8080 max_fails=1 fail_timeout=5s;", servers],
    ["listen 80;", `listen 127.0.0.1:${options.httpPort};`],
    ["listen [::]:80;", ""],
    ["listen 443 ssl http2;", `listen 127.0.0.1:${options.httpsPort} ssl http2;`],
    ["listen [::]:443 ssl http2;", ""],
    ["/etc/letsencrypt/live/herald.example.com/fullchain.pem", options.cert],
    ["/etc/letsencrypt/live/herald.example.com/privkey.pem", options.key],
  ];
  return edits.reduce((text, [from, to]) => replaceExact(text, from, to), recipe);
}

export interface RunningNginx {
  /** https://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** The PEM of the self-signed certificate, to trust in clients. */
  readonly ca: string;
  readonly process: ChildProcess;
  errorLog(): Promise<string>;
  stop(): Promise<void>;
}

async function accepts(port: number): Promise<boolean> {
  const socket = connectTcp(port, "127.0.0.1");
  try {
    await once(socket, "connect");
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

/** Renders the recipe into a temp dir and runs nginx in the foreground as this user, on free ports. */
export async function startNginx(upstreams: readonly string[]): Promise<RunningNginx> {
  const dir = await mkdtemp(join(tmpdir(), "herald-nginx-"));
  await mkdir(join(dir, "logs"));
  const { cert, key } = makeCertificate(dir);
  const port = await freePort();
  const config = renderRecipe(await readFile(RECIPE, "utf8"), {
    dir,
    httpsPort: port,
    httpPort: await freePort(),
    cert,
    key,
    upstreams,
  });
  const file = join(dir, "nginx.conf");
  await writeFile(file, config);
  const child = spawn(NGINX, ["-p", dir, "-c", file, "-e", join(dir, "error.log"), "-g", "daemon off;"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  // If the test process ends without stop() (a crash), nginx must not outlive it.
  const orphanGuard = () => child.kill("SIGTERM");
  process.once("exit", orphanGuard);
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      process.off("exit", orphanGuard);
      resolve();
    }),
  );
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // SIGTERM: fast shutdown, the master ends its workers (SIGKILL would orphan them).
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_MS);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + START_MS;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`nginx did not start on ${port}:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    ca: await readFile(cert, "utf8"),
    process: child,
    errorLog: () => readFile(join(dir, "error.log"), "utf8").catch(() => ""),
    stop,
  };
}

export interface H2Response {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** An HTTP/2 session to nginx that trusts the test's certificate. */
export async function h2Session(nginx: RunningNginx, localAddress?: string): Promise<ClientHttp2Session> {
  const session = connectHttp2(nginx.url, { ca: nginx.ca, ...(localAddress ? { localAddress } : {}) });
  session.on("error", () => {});
  await once(session, "connect");
  return session;
}

/** One request on an HTTP/2 session, read to the end. */
export function h2Request(
  session: ClientHttp2Session,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": method, ":path": path, ...headers }, { endStream: body === undefined });
    let status = 0;
    let responseHeaders: Record<string, string | string[] | undefined> = {};
    let text = "";
    stream.setEncoding("utf8");
    stream.on("response", (received) => {
      status = Number(received[":status"]);
      responseHeaders = received as Record<string, string | string[] | undefined>;
    });
    stream.on("data", (chunk: string) => {
      text += chunk;
    });
    stream.on("end", () => resolve({ status, headers: responseHeaders, body: text }));
    // A proxy may answer (413) before it has read the whole body and then reset the stream.
    stream.on("error", (error) =>
      status > 0 ? resolve({ status, headers: responseHeaders, body: text }) : reject(error),
    );
    if (body !== undefined) stream.end(body);
  });
}

/** A streaming GET (SSE or JSON lines) over HTTP/2, recording each event or line as it arrives. */
export class H2Stream {
  status = 0;
  headers: Record<string, string | string[] | undefined> = {};
  /** SSE: `event` name (default "message") and `data`; JSON lines: event "line" and the line. */
  readonly events: { event: string; data: string }[] = [];
  ended = false;
  readonly opened: Promise<void>;
  #buffer = "";
  readonly #stream: ReturnType<ClientHttp2Session["request"]>;

  constructor(session: ClientHttp2Session, path: string, headers: Record<string, string> = {}) {
    this.#stream = session.request({ ":method": "GET", ":path": path, ...headers });
    this.#stream.setEncoding("utf8");
    this.opened = new Promise((resolve, reject) => {
      this.#stream.once("response", (received) => {
        this.status = Number(received[":status"]);
        this.headers = received as Record<string, string | string[] | undefined>;
        resolve();
      });
      this.#stream.once("error", reject);
    });
    this.#stream.on("data", (chunk: string) => this.#onData(chunk));
    const finish = () => {
      this.ended = true;
    };
    this.#stream.on("end", finish);
    this.#stream.on("close", finish);
    this.#stream.on("error", finish);
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    const sse = String(this.headers["content-type"] ?? "").startsWith("text/event-stream");
    const separator = sse ? "\n\n" : "\n";
    let index = this.#buffer.indexOf(separator);
    while (index !== -1) {
      const block = this.#buffer.slice(0, index);
      this.#buffer = this.#buffer.slice(index + separator.length);
      if (!sse) {
        if (block.length > 0) this.events.push({ event: "line", data: block });
      } else {
        let event = "message";
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data.push(line.slice(6));
        }
        if (data.length > 0) this.events.push({ event, data: data.join("\n") });
      }
      index = this.#buffer.indexOf(separator);
    }
  }

  /** Waits until `predicate` holds; fails after `timeoutMs` showing what arrived. */
  async until(predicate: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out; received: ${JSON.stringify(this.events).slice(-2000)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  close(): void {
    this.#stream.close();
  }
}
