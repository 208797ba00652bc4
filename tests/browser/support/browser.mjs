// Debian's Chromium under Playwright, as the project's rules start it, and a page origin of
// our own: a static server on `localhost` (another site than nudge's 127.0.0.1), so every call
// to nudge is cross-origin as it is from a real product.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import * as esbuild from 'esbuild';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
];

/** A fresh Chromium profile; `close()` removes it. */
export async function launchChromium() {
  const profile = mkdtempSync(path.join(tmpdir(), 'nudge-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Watches a page: console errors, uncaught exceptions and failed requests (a test asserts
 * there are none), and every request to nudge with its method, path, headers and body.
 */
export function watch(page, nudgeBase) {
  const seen = { errors: [], requests: [] };
  page.on('console', (msg) => {
    if (msg.type() === 'error') seen.errors.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => seen.errors.push(`page: ${err.message}`));
  page.on('response', (res) => {
    if (res.status() >= 400) seen.errors.push(`answer ${res.status()}: ${res.request().method()} ${res.url()}`);
  });
  page.on('requestfailed', (req) => {
    seen.errors.push(`request failed: ${req.method()} ${req.url()} ${req.failure()?.errorText}`);
  });
  page.on('request', (req) => {
    if (!req.url().startsWith(nudgeBase)) return;
    seen.requests.push({
      method: req.method(),
      path: new URL(req.url()).pathname,
      query: new URL(req.url()).search,
      headers: req.headers(),
      body: req.postData(),
    });
  });
  return seen;
}

/** Bundles `entries` (name -> module source file) for the browser into `dir`. */
export async function bundle(entries, dir) {
  await esbuild.build({
    entryPoints: entries,
    outdir: dir,
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    logLevel: 'warning',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
}

/**
 * Serves files of `dir` (and any extra `routes`, path -> [type, body]) on a free port of
 * `localhost`. Resolves to `{origin, close()}`.
 */
export async function serveOrigin(dir, routes = {}) {
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    const extra = routes[url.pathname];
    if (extra) {
      res.writeHead(200, { 'content-type': extra[0] });
      res.end(extra[1]);
      return;
    }
    const file = path.join(dir, path.normalize(url.pathname).replace(/^(\.\.[/\\])+/, ''));
    try {
      const body = readFileSync(file);
      const type = file.endsWith('.js') ? 'text/javascript' : file.endsWith('.html') ? 'text/html' : 'application/octet-stream';
      res.writeHead(200, { 'content-type': type });
      res.end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  await new Promise((resolve) => server.listen(0, 'localhost', resolve));
  const { port } = server.address();
  return {
    origin: `http://localhost:${port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
