// `npm pack` makes a package that installs without dev dependencies and runs as `npx herald serve`: the
// compiled dist/ under plain node, with /client.js and the demos served from the installed package.
import { type ChildProcess, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { type PushFixture, startPushFixture, subscribePush } from "./helpers/push.js";
import { until } from "./helpers/until.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** npm pack (the build included) and an install from the npm cache or registry. */
const TEST_TIMEOUT_MS = 300_000;

/** The environment of a user's shell: none of the test's own switches (HERALD_FROM_SOURCE needs tsx). */
function userEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith("HERALD_") || name.startsWith("npm_")) delete env[name];
  return env;
}

function run(command: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: userEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(output);
      else reject(new Error(`${command} ${args.join(" ")} exited ${code}:\n${output}`));
    });
  });
}

/**
 * better-sqlite3 builds its native addon in an install script (a prebuilt download, else about two minutes
 * of compiling). The test installs with --ignore-scripts (better-sqlite3's is the only runtime dependency
 * with one) and gives it the addon this clone already built for the same version and Node; another version
 * is built for real with `npm rebuild`.
 */
async function provideSqliteAddon(app: string): Promise<void> {
  const installed = join(app, "node_modules", "better-sqlite3");
  const ours = join(ROOT, "node_modules", "better-sqlite3");
  const version = (dir: string) =>
    (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string }).version;
  const addon = join("build", "Release", "better_sqlite3.node");
  if (version(installed) === version(ours) && existsSync(join(ours, addon))) {
    mkdirSync(join(installed, "build", "Release"), { recursive: true });
    copyFileSync(join(ours, addon), join(installed, addon));
  } else {
    await run("npm", ["rebuild", "better-sqlite3"], app);
  }
}

function groupAlive(group: number): boolean {
  try {
    process.kill(group, 0);
    return true;
  } catch {
    return false;
  }
}

let server: ChildProcess | undefined;
let workDir: string | undefined;
let push: PushFixture | undefined;

afterAll(async () => {
  // `npx` runs herald in a process group of its own (detached): end the whole group.
  if (server?.pid !== undefined && groupAlive(-server.pid)) process.kill(-server.pid, "SIGKILL");
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  await push?.close();
});

describe("the npm package", () => {
  it(
    "installs with --omit=dev and serves the API, /client.js and the demos from dist/",
    async () => {
      workDir = mkdtempSync(join(tmpdir(), "herald-package-"));
      // npm pack runs `prepare` (the build), so the tarball holds a dist/ built from these sources.
      await run("npm", ["pack", "--pack-destination", workDir], ROOT);
      const tarball = readdirSync(workDir).find((name) => name.endsWith(".tgz"));
      expect(tarball).toBeDefined();

      const app = join(workDir, "app");
      mkdirSync(app);
      writeFileSync(join(app, "package.json"), JSON.stringify({ name: "herald-package-test", private: true }));
      const install = ["install", "--omit=dev", "--no-audit", "--no-fund", "--prefer-offline"];
      // HERALD_PACKAGE_FULL_INSTALL=1: install scripts too, as a user's install runs them (minutes: SQLite compiles).
      const full = process.env.HERALD_PACKAGE_FULL_INSTALL === "1";
      await run("npm", [...install, ...(full ? [] : ["--ignore-scripts"]), join(workDir, tarball as string)], app);
      if (!full) await provideSqliteAddon(app);

      const modules = join(app, "node_modules");
      const pkg = join(modules, "herald");
      // What ships: the build, the bin, the demos; not the sources, tests or benchmarks.
      for (const path of [
        "bin/herald.js",
        "dist/main.js",
        "dist/main.js.map",
        "dist/client.js",
        "dist/herald-sw.js",
        "dist/push-worker.js",
        "demo/index.html",
        "openapi.yaml",
        "README.md",
        "LICENSE",
      ]) {
        expect(existsSync(join(pkg, path)), path).toBe(true);
      }
      for (const path of ["src", "test", "bench", "client", "scripts", "tsconfig.json"]) {
        expect(existsSync(join(pkg, path)), path).toBe(false);
      }
      // Runtime dependencies only: no loader, compiler or test runner.
      for (const dev of ["tsx", "esbuild", "typescript", "vitest", "@biomejs/biome"]) {
        expect(existsSync(join(modules, dev)), dev).toBe(false);
      }
      // Stack traces map to the TypeScript sources.
      const map = JSON.parse(readFileSync(join(pkg, "dist", "main.js.map"), "utf8")) as { sources: string[] };
      expect(map.sources).toContain("../src/main.ts");

      const dataDir = join(workDir, "data");
      // Web Push too: its sender runs in a worker thread, a script of its own in dist/.
      push = await startPushFixture();
      const configFile = join(workDir, "herald.json");
      writeFileSync(configFile, JSON.stringify({ push: push.section() }));
      const args = [
        "herald",
        "serve",
        "--port",
        "0",
        "--store",
        "sqlite",
        "--data-dir",
        dataDir,
        "--config",
        configFile,
      ];
      server = spawn("npx", args, {
        cwd: app,
        env: { ...userEnv(), NODE_EXTRA_CA_CERTS: push.service.caFile },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      let output = "";
      const url = await new Promise<string>((resolve, reject) => {
        server?.stdout?.on("data", (chunk: Buffer) => {
          output += chunk.toString();
          const match = /Herald listening on (http:\/\/\S+)/.exec(output);
          if (match) resolve(match[1] as string);
        });
        server?.stderr?.on("data", (chunk: Buffer) => {
          output += chunk.toString();
        });
        server?.on("exit", (code) => reject(new Error(`herald exited (${code}) before listening:\n${output}`)));
      });
      expect(output).toContain("sqlite");

      const published = await fetch(`${url}/v1/mailboxes/package:test/messages`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ title: "from the tarball" }),
      });
      expect(published.status).toBe(201);
      const read = (await (await fetch(`${url}/v1/mailboxes/package:test/messages`)).json()) as {
        messages: { seq: number; title: string }[];
      };
      expect(read.messages.map((message) => [message.seq, message.title])).toEqual([[1, "from the tarball"]]);

      const client = await fetch(`${url}/client.js`);
      expect(client.status).toBe(200);
      expect(client.headers.get("content-type")).toContain("javascript");
      expect(await client.text()).toContain("export {");
      const page = await fetch(`${url}/demo/dashboard`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain("<html");
      expect((await fetch(`${url}/demo/vendor/uPlot.iife.min.js`)).status).toBe(200);
      expect((await fetch(`${url}/demo/assets/common.js`)).status).toBe(200);
      expect((await fetch(`${url}/herald-sw.js`)).status).toBe(200);

      const browser = push.service.subscribe();
      expect((await subscribePush(url, browser, ["package:test"])).status).toBe(201);
      await fetch(`${url}/v1/mailboxes/package:test/messages`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ title: "pushed from the tarball" }),
      });
      const [pushed] = await push.service.waitFor(1, { subscription: browser, timeoutMs: 10_000 });
      expect(pushed?.payload).toMatchObject({ mailbox: "package:test", title: "pushed from the tarball" });

      // npx does not pass signals on: SIGTERM the group (npx and herald), as a terminal's Ctrl-C would.
      const exited = new Promise<void>((resolve) => server?.once("exit", () => resolve()));
      const group = -(server.pid as number);
      process.kill(group, "SIGTERM");
      await exited;
      await until(() => !groupAlive(group), "herald to drain and exit", 10_000);
      expect(output).toMatch(/Herald stopped: .*exit 0/);
    },
    TEST_TIMEOUT_MS,
  );
});
