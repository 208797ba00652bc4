// How long a nudge takes to appear in an open page (BENCHMARKS.md, "The inbox widget"): a
// real `nudge serve` (debug or release build, see NUDGE_BIN / CARGO_TARGET_DIR), the widget in
// headless Chromium, and N times: an event posted that decides an in-app message, timed until
// the widget's badge counts it. Not a test (timings are measured, never asserted).
//
//   node tests/browser/widget-latency.mjs [rounds, default 20]

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { launchChromium, serveOrigin } from './support/browser.mjs';
import { ROOT, WRITE_KEY, startNudge, userHash } from './support/nudge.mjs';

const rounds = Number(process.argv[2] || 20);
const pages = mkdtempSync(path.join(tmpdir(), 'nudge-latency-'));
const nudge = await startNudge(path.join(ROOT, 'tests', 'sdk-rules'));
const site = await serveOrigin(pages);
const chromium = await launchChromium();
try {
  const user = 'latency-user';
  writeFileSync(path.join(pages, 'app.html'), `<!doctype html><script src="${nudge.base}/v1/sdk/inbox.js"></script>
    <nudge-inbox api="${nudge.base}" user-id="${user}" user-hash="${userHash(user)}"></nudge-inbox>`);
  const page = await chromium.context.newPage();
  await page.goto(`${site.origin}/app.html`);
  await page.waitForFunction(() => document.querySelector('nudge-inbox').shadowRoot.querySelector('.bell'));
  const times = [];
  for (let i = 1; i <= rounds; i++) {
    const started = performance.now();
    const res = await fetch(`${nudge.base}/v1/track`, {
      method: 'POST',
      headers: { Authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ userId: user, event: 'Step Completed', properties: { step: `s${i}` } }),
    });
    if (res.status !== 200) throw new Error(`track: ${res.status}`);
    await page.waitForFunction((n) => {
      const badge = document.querySelector('nudge-inbox').shadowRoot.querySelector('.badge');
      return Number(badge.textContent) >= n;
    }, i, { polling: 'raf', timeout: 10_000 });
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))].toFixed(0);
  console.log(`${rounds} messages, from the POST to the badge: median ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms`);
} finally {
  await chromium.close();
  await site.close();
  await nudge.stop();
  rmSync(pages, { recursive: true, force: true });
}
