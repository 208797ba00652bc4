// A real `nudge serve` for the browser tests: its own data folder, a free loopback port, and
// known keys, so a test can post, read the inbox and ask the admin API what was decided.

import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const WRITE_KEY = 'wk_browser';
export const ADMIN_KEY = 'ak_browser';
export const INBOX_SECRET = 'inbox-secret-browser';

/** The debug build of `nudge` the test command made (CARGO_TARGET_DIR is honoured). */
export function nudgeBinary() {
  const target = process.env.CARGO_TARGET_DIR
    ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR)
    : path.join(ROOT, 'target');
  const bin = path.join(target, 'debug', 'nudge');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build first (scripts/test.sh does)`);
  return bin;
}

/** hex(HMAC-SHA256(inbox secret, userId)): what the app's server computes for the widget. */
export function userHash(userId, secret = INBOX_SECRET) {
  return createHmac('sha256', secret).update(userId).digest('hex');
}

/** Starts `nudge serve --rules RULES` with extra flags; resolves once it listens. */
export async function startNudge(rules, extra = []) {
  const data = mkdtempSync(path.join(tmpdir(), 'nudge-browser-'));
  const child = spawn(
    nudgeBinary(),
    ['serve', '--rules', rules, '--data', path.join(data, 'data'), '--listen', '127.0.0.1:0',
      '--write-key', WRITE_KEY, '--admin-key', ADMIN_KEY, '--inbox-secret', INBOX_SECRET, ...extra],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RUST_LOG: 'warn,nudge=info' } },
  );
  const lines = [];
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nudge serve did not start:\n${lines.join('')}`)), 30_000);
    let pending = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl + 1);
        pending = pending.slice(nl + 1);
        lines.push(line);
        const m = /listening on (http:\/\/\S+)/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nudge serve exited with ${code}:\n${lines.join('')}`));
    });
  });
  return new Nudge(child, base, data, lines);
}

export class Nudge {
  constructor(child, base, data, lines) {
    this.child = child;
    this.base = base;
    this.dataDir = data;
    this.lines = lines;
  }

  async json(pathAndQuery, init = {}) {
    const res = await fetch(this.base + pathAndQuery, init);
    const text = await res.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { status: res.status, headers: res.headers, body };
  }

  /** The user's delivery log (sent and suppressed decisions), oldest first. */
  async decisions(userId) {
    const r = await this.json(`/v1/admin/users/${encodeURIComponent(userId)}/decisions`, {
      headers: { Authorization: `Bearer ${ADMIN_KEY}` },
    });
    if (r.status !== 200) throw new Error(`decisions of ${userId}: ${r.status} ${JSON.stringify(r.body)}`);
    return [...r.body.decisions].reverse();
  }

  /** The user's in-app inbox, newest first. */
  async inbox(userId) {
    const r = await this.json(`/v1/users/${encodeURIComponent(userId)}/inbox`, {
      headers: { 'X-User-Hash': userHash(userId) },
    });
    if (r.status !== 200) throw new Error(`inbox of ${userId}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.items;
  }

  /** A counter or gauge of /metrics (0 when absent). */
  async metric(name) {
    const text = await (await fetch(`${this.base}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.split(' ')[1]) : 0;
  }

  async stop() {
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGKILL');
      await exited;
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Polls `fn` until it returns something truthy (or `timeoutMs` passes); returns the last value. */
export async function eventually(fn, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}
