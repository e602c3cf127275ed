import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BENCH_FILE_LIMIT, cpuMsOf, exitOnSignals, freePort, type HeraldProcess, rssOf } from "./herald-process.js";

const NGINX = "/usr/sbin/nginx";
const NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so";
/** Longest nginx may take to answer its first request. */
const START_TIMEOUT_MS = 15_000;
/** Longest nginx may take to exit before it and its workers are killed. */
const STOP_TIMEOUT_MS = 15_000;
/** Messages kept per channel: resuming subscribers in the benches fall at most this far behind. */
const MESSAGE_BUFFER_LENGTH = 1_000;

/**
 * Nchan (nginx's pub/sub module, Debian's libnginx-mod-nchan) as a reference server, every
 * channel in memory. Routes, `<id>` being the channel:
 *
 * - `POST /pub/<id>`: publish the body (201 with subscribers, 202 without). A GET there answers
 *   the channel's info (`Accept: text/json` for JSON with `subscribers`), 404 before the first publish.
 * - `GET /sub/sse/<id>`: EventSource. Nchan answers 403 unless the request sends
 *   `Accept: text/event-stream`. The stream opens with a `: hi` comment; each message is
 *   `id: <time>:<tag>` then one `data:` line per line of the body (an `event:` line first when
 *   published with `X-EventSource-Event`). `Last-Event-ID` resumes after that id.
 * - `GET /sub/lp/<id>`: long-poll, one message per response, with the publisher's Content-Type.
 *   The message id travels as `Last-Modified` (its time, whole seconds) and `Etag` (its tag,
 *   which tells apart messages in the same second); the next poll sends them back as
 *   `If-Modified-Since` and `If-None-Match` and gets the message after that one, at once if it is
 *   buffered. A poll without them waits for the next message published. There is no timeout
 *   (`nchan_subscriber_timeout` is 0, waiting forever); with one, the poll ends with 408 carrying
 *   `Etag` but not `Last-Modified` (nginx drops it from non-200 answers), so a client keeps the
 *   values it had.
 * - `GET /sub/ws/<id>`: WebSocket, one text frame per message.
 *
 * RSS and CPU are summed over the master and its workers; pages they share (the binary,
 * Nchan's shared-memory zone once touched) count once per process, so with more workers
 * the RSS overstates.
 */

export interface NchanOptions {
  /** nginx `worker_processes`; 1 by default, like one Herald process. */
  readonly workers?: number;
}

/** Whether this machine has nginx and the Nchan module where Debian installs them. */
export function nchanAvailable(): { ok: true } | { ok: false; reason: string } {
  if (!existsSync(NGINX)) return { ok: false, reason: `${NGINX} not found (apt-get install nginx)` };
  if (!existsSync(NCHAN_MODULE)) {
    return { ok: false, reason: `${NCHAN_MODULE} not found (apt-get install libnginx-mod-nchan)` };
  }
  return { ok: true };
}

/** Child processes of `pid`: this kernel has no /proc/<pid>/task/<tid>/children, so every /proc/<n>/stat is read. */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited while we looked
    }
    // The parent pid is the second field after the parenthesised command name.
    if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) children.push(Number(entry));
  }
  return children;
}

/** Sums `measure` over the master and its workers; a worker gone between the scan and the read counts 0. */
function sumOver(pid: number, measure: (pid: number) => number): number {
  let total = 0;
  for (const each of [pid, ...childrenOf(pid)]) {
    try {
      total += measure(each);
    } catch {}
  }
  return total;
}

function nginxConfig(dir: string, port: number, workers: number): string {
  // As root, workers would switch to nobody and could not write the 0700 temp dir.
  const user = process.getuid?.() === 0 ? "user root;\n" : "";
  return `load_module ${NCHAN_MODULE};
${user}daemon off;
master_process on;
worker_processes ${workers};
worker_rlimit_nofile ${BENCH_FILE_LIMIT};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections ${BENCH_FILE_LIMIT}; }
http {
  access_log off;
  # nginx creates these at start-up; the compiled-in ones are under /var/lib/nginx.
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    # A new subscriber gets only what is published after it connects, like Herald's ?cursor=now;
    # the default, oldest, would replay the buffer first.
    nchan_subscriber_first_message newest;
    location ~ ^/pub/([^/]+)$ {
      nchan_publisher;
      nchan_channel_id $1;
      nchan_message_buffer_length ${MESSAGE_BUFFER_LENGTH};
      nchan_message_timeout 1h;
    }
    location ~ ^/sub/sse/([^/]+)$ {
      nchan_subscriber eventsource;
      nchan_channel_id $1;
    }
    location ~ ^/sub/lp/([^/]+)$ {
      nchan_subscriber longpoll;
      nchan_channel_id $1;
    }
    location ~ ^/sub/ws/([^/]+)$ {
      nchan_subscriber websocket;
      nchan_channel_id $1;
    }
  }
}
`;
}

/** True once nginx answers a GET, whatever the status; a fresh connection each time, so none is left open. */
function answers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: "/", agent: false }, (res) => {
      res.resume();
      resolve(true);
    });
    req.once("error", () => resolve(false));
    req.end();
  });
}

/** Starts nginx with Nchan on a free loopback port, its config, pid, logs and temp files in a fresh temp dir. */
export async function startNchan(options: NchanOptions = {}): Promise<HeraldProcess> {
  const available = nchanAvailable();
  if (!available.ok) throw new Error(available.reason);
  const dir = mkdtempSync(join(tmpdir(), "nchan-bench-"));
  const host = "127.0.0.1";
  const port = await freePort();
  writeFileSync(join(dir, "nginx.conf"), nginxConfig(dir, port, options.workers ?? 1));
  // daemon off with master_process on: the child is the master, which forks the workers.
  const child: ChildProcess = spawn(NGINX, ["-p", dir, "-c", join(dir, "nginx.conf")], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const pid = child.pid as number;
  let exited = false;
  // A killed master leaves its workers running, so they are killed by pid too.
  const killAll = () => {
    if (exited) return;
    for (const each of [pid, ...childrenOf(pid)]) {
      try {
        process.kill(each, "SIGKILL");
      } catch {}
    }
  };
  // A load process that dies (an exception, Ctrl-C, a closed pipe) must not leave nginx running.
  const onExit = () => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", onExit);
  exitOnSignals();
  child.once("exit", () => {
    exited = true;
  });
  const deadline = performance.now() + START_TIMEOUT_MS;
  while (!(await answers(host, port))) {
    if (exited || performance.now() > deadline) {
      const log = existsSync(join(dir, "error.log")) ? readFileSync(join(dir, "error.log"), "utf8") : "";
      process.off("exit", onExit);
      onExit();
      throw new Error(`nchan did not start: ${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url: `http://${host}:${port}`,
    host,
    port,
    pid,
    rssBytes: () => sumOver(pid, rssOf),
    cpuMs: () => sumOver(pid, cpuMsOf),
    stop: () =>
      new Promise<void>((resolve) => {
        const done = () => {
          process.off("exit", onExit);
          rmSync(dir, { recursive: true, force: true });
          resolve();
        };
        if (exited) return done();
        const timer = setTimeout(killAll, STOP_TIMEOUT_MS);
        child.once("exit", () => {
          clearTimeout(timer);
          done();
        });
        // Fast shutdown: graceful (SIGQUIT) would wait for every open subscriber.
        child.kill("SIGTERM");
      }),
  };
}
