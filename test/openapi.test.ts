import { readFileSync } from "node:fs";
import SwaggerParser from "@apidevtools/swagger-parser";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ERROR_CATALOGUE } from "../src/errors.js";
import { createApp } from "../src/http/app.js";
import type { AppDeps } from "../src/http/deps.js";
import { ntfyRoutes } from "../src/http/ntfy/ntfy-routes.js";
import { DEFAULT_NTFY_PREFIX } from "../src/ntfy/ntfy-config.js";
import { SERVED_ROUTES } from "../src/server.js";

const specText = readFileSync(new URL("../openapi.yaml", import.meta.url), "utf8");
const HTTP_METHODS = ["get", "post", "put", "patch", "delete", "head", "options"];

function specRoutes(spec: { paths: Record<string, Record<string, unknown>> }): string[] {
  const routes: string[] = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of Object.keys(item)) {
      if (HTTP_METHODS.includes(method)) routes.push(`${method.toUpperCase()} ${path}`);
    }
  }
  return routes.sort();
}

describe("openapi.yaml", () => {
  it("is a valid OpenAPI 3.x document", async () => {
    const spec = parse(specText);
    expect(spec.openapi).toMatch(/^3\./);
    await expect(SwaggerParser.validate(structuredClone(spec))).resolves.toBeTruthy();
  });

  it("lists exactly the routes the app serves", () => {
    // Routes are registered from declarations alone; no dependency is touched while building the app.
    const app = createApp({} as AppDeps, [...SERVED_ROUTES, ...ntfyRoutes(DEFAULT_NTFY_PREFIX)]);
    const served = app.routes
      .filter((route) => route.method !== "ALL")
      .map((route) => `${route.method} ${route.path.replace(/:(\w+)/g, "{$1}")}`);
    expect([...new Set(served)].sort()).toEqual(specRoutes(parse(specText)));
  });

  it("names every error code of the catalogue", () => {
    const spec = parse(specText);
    expect([...spec.components.schemas.Error.properties.error.properties.code.enum].sort()).toEqual(
      Object.keys(ERROR_CATALOGUE).sort(),
    );
  });
});
