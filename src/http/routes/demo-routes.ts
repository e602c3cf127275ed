import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import type { Context } from "hono";
import { HeraldError } from "../../errors.js";
import { PACKAGE_ROOT } from "../../package-root.js";
import type { RouteSpec } from "../deps.js";
import { serveClientBundle, serveServiceWorker } from "./client-bundle.js";

const DEMO_DIR = new URL("demo/", PACKAGE_ROOT);
/**
 * uPlot, the dashboard's charting library, served from its package as published: resolved like an
 * import, since in an installed Herald it may sit in a node_modules above Herald's own folder.
 */
const UPLOT_DIR = new URL("dist/", pathToFileURL(createRequire(import.meta.url).resolve("uplot/package.json")));
const VENDOR_FILES = new Set(["uPlot.iife.min.js", "uPlot.min.css"]);
const PAGES = new Set(["chat", "dashboard", "inbox", "ticker"]);
const ASSET = /^[a-z][a-z0-9-]*\.(js|css|svg)$/;
const CONTENT_TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
};

export async function demoFile(c: Context, name: string, dir: URL = DEMO_DIR): Promise<Response> {
  const extension = name.slice(name.lastIndexOf(".") + 1);
  let text: string;
  try {
    text = await readFile(new URL(name, dir), "utf8");
  } catch {
    throw new HeraldError("not_found", `No demo file ${name}`);
  }
  return c.body(text, 200, {
    "Content-Type": CONTENT_TYPES[extension] ?? "application/octet-stream",
    "Cache-Control": "no-cache",
  });
}

function vendorFile(c: Context): Promise<Response> {
  const file = c.req.param("file") ?? "";
  if (!VENDOR_FILES.has(file)) throw new HeraldError("not_found", `No vendored file ${file}`);
  return demoFile(c, file, UPLOT_DIR);
}

function demoPage(c: Context): Promise<Response> {
  const page = c.req.param("page") ?? "";
  if (!PAGES.has(page)) throw new HeraldError("not_found", `No demo called "${page}"; try ${[...PAGES].join(", ")}`);
  return demoFile(c, `${page}.html`);
}

function demoAsset(c: Context): Promise<Response> {
  const file = c.req.param("file") ?? "";
  if (!ASSET.test(file)) throw new HeraldError("not_found", `No demo asset ${file}`);
  return demoFile(c, file);
}

/** The demo apps and the client bundle; not part of the API, so kept out of ROUTES and openapi.yaml. */
export const DEMO_ROUTES: readonly RouteSpec[] = [
  { method: "GET", path: "/", handler: (c) => demoFile(c, "index.html") },
  { method: "GET", path: "/client.js", handler: serveClientBundle },
  // Web Push's service worker (client/sw/herald-sw.ts), at the root so that it may control every page.
  { method: "GET", path: "/herald-sw.js", handler: serveServiceWorker },
  // Browsers ask for it on every page; the demos' icon is an SVG.
  { method: "GET", path: "/favicon.ico", handler: (c) => demoFile(c, "favicon.svg") },
  { method: "GET", path: "/demo/vendor/:file", handler: vendorFile },
  { method: "GET", path: "/demo/assets/:file", handler: demoAsset },
  { method: "GET", path: "/demo/:page", handler: demoPage },
];
