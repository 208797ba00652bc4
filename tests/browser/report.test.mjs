// `nudge report --format html` in headless Chromium: the page written for the SaaS example's
// history renders offline (no request of any kind, no console error), with the triggers table,
// a chart per funnel and per experiment, the breakdown and the comparisons; a trait value that
// is HTML stays text.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';

import { launchChromium } from './support/browser.mjs';
import { ROOT, nudgeBinary } from './support/nudge.mjs';

const RULES = path.join(ROOT, 'examples', 'saas-onboarding');
const HOSTILE = '<img src=x onerror="window.__pwned = 1">';

let dir;
let chromium;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'nudge-report-page-'));
  chromium = await launchChromium();
});

after(async () => {
  await chromium?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A week of onboarding for a few users, one of them on a plan named like HTML. */
function history() {
  const lines = [];
  const start = Date.parse('2026-03-02T09:00:00Z');
  const at = (min) => new Date(start + min * 60_000).toISOString();
  const plans = ['team', 'pro', HOSTILE];
  const steps = ['account', 'profile', 'team', 'integrations', 'payment'];
  let n = 0;
  for (let u = 0; u < 30; u++) {
    const userId = `reader-${String(u + 1).padStart(2, '0')}`;
    const t0 = u * 7;
    const add = (min, fields) => lines.push({ userId, timestamp: at(t0 + min), messageId: `m${n++}`, ...fields });
    add(0, { type: 'identify', traits: { plan: plans[u % 3], email: `${userId}@example.com` } });
    add(0, { type: 'track', event: 'Signed Up' });
    for (const [i, step] of steps.entries()) {
      if ((u + i) % 4 === 3) break;
      add(10 + i * 30, { type: 'track', event: 'Onboarding Step Completed', properties: { step, step_index: i + 1 } });
    }
    add(5, { type: 'track', event: 'Help Article Viewed', properties: { article: 'setup' } });
    if (u % 2 === 0) add(600, { type: 'track', event: 'Onboarding Completed' });
  }
  return lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
}

test('the HTML report renders offline with every part, untrusted text as text', async () => {
  const events = path.join(dir, 'events.jsonl');
  const page = path.join(dir, 'report.html');
  writeFileSync(events, history());
  execFileSync(nudgeBinary(), ['report', '--rules', RULES, '--format', 'html', '--out', page, events]);
  const json = JSON.parse(execFileSync(nudgeBinary(), ['report', '--rules', RULES, '--format', 'json', events]));

  const tab = await chromium.context.newPage();
  const problems = [];
  tab.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text()); });
  tab.on('pageerror', (e) => problems.push(e.message));
  tab.on('request', (r) => { if (!r.url().startsWith('file:')) problems.push(`request ${r.url()}`); });
  await tab.goto(pathToFileURL(page).href);
  await tab.waitForSelector('body[data-rendered]');

  const charts = Number(await tab.getAttribute('body', 'data-rendered'));
  assert.equal(charts, json.funnels.length + json.experiments.length);
  const canvases = await tab.$$eval('canvas', (cs) => cs.map((c) => [c.width, c.height]));
  assert.equal(canvases.length, charts);
  for (const [w, h] of canvases) assert.ok(w > 100 && h > 100, `canvas ${w}x${h}`);

  const triggers = await tab.$$eval('#trigger-table tbody tr.trigger td:first-child', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(triggers, json.triggers.map((t) => t.trigger));
  assert.match(await tab.textContent('#summary'), new RegExp(`${json.events} events`));

  // The funnel's breakdown by plan lists the hostile plan as its text; nothing ran.
  const values = await tab.$$eval('table.breakdown tbody td:first-child', (tds) => tds.map((t) => t.textContent));
  assert.ok(values.includes(HOSTILE), JSON.stringify(values));
  assert.equal(await tab.evaluate(() => window.__pwned), undefined);
  assert.equal(await tab.$$eval('main img', (imgs) => imgs.length), 0);

  // Every comparison is listed with its verdict.
  const verdicts = await tab.$$eval('table.comparisons td.verdict', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(verdicts, json.experiments.flatMap((e) => e.comparisons.map((c) => c.verdict)));

  assert.deepEqual(problems, []);
  await tab.close();
});
