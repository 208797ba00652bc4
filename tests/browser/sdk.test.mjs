// Unmodified browser SDKs, bundled from npm as an app bundles them, in headless Chromium on a
// page of another origin, sending to a real `nudge serve`: Segment's analytics.js
// (@segment/analytics-next) and RudderStack's JavaScript SDK (@rudderstack/analytics-js).
// Every call must reach evaluation; the rule set (tests/sdk-rules) answers each kind of call
// with an in-app message whose text shows the user's traits arrived first.

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { bundle, launchChromium, serveOrigin, watch } from './support/browser.mjs';
import { proxy } from './support/proxy.mjs';
import { ROOT, WRITE_KEY, eventually, startNudge } from './support/nudge.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RULES = path.join(ROOT, 'tests', 'sdk-rules');

let nudge;
let site;
let chromium;
let assets;

before(async () => {
  assets = mkdtempSync(path.join(tmpdir(), 'nudge-sdk-pages-'));
  await bundle(
    {
      segment: path.join(HERE, 'pages', 'segment.js'),
      rudderstack: path.join(HERE, 'pages', 'rudderstack.js'),
    },
    assets,
  );
  copyFileSync(path.join(HERE, 'pages', 'blank.html'), path.join(assets, 'index.html'));
  site = await serveOrigin(assets);
  nudge = await startNudge(RULES);
  chromium = await launchChromium();
});

after(async () => {
  await chromium?.close();
  await site?.close();
  await nudge?.stop();
  rmSync(assets, { recursive: true, force: true });
});

/** A page of the app's origin with one SDK loaded, watched for errors and requests to nudge. */
async function appPage(sdk, nudgeBase = nudge.base) {
  const page = await chromium.context.newPage();
  const seen = watch(page, nudgeBase);
  await page.goto(`${site.origin}/index.html`);
  await page.addScriptTag({ url: `${site.origin}/${sdk}.js` });
  return { page, seen };
}

/** `host:port/v1`: analytics.js's `apiHost` for a nudge at `base`. */
function apiHost(base) {
  return `${new URL(base).host}/v1`;
}

/** Titles of the in-app messages decided for `user`, once `n` are there. */
async function titles(user, n) {
  const items = await eventually(async () => {
    const got = await nudge.inbox(user);
    return got.length >= n ? got : null;
  });
  assert.ok(items, `${user}: fewer than ${n} messages: ${JSON.stringify(await nudge.inbox(user))}`);
  return items.map((i) => i.title).sort();
}

describe('Segment analytics.js (@segment/analytics-next)', () => {
  test('identify, page, track, group and alias reach nudge on the one-letter paths', async () => {
    const accepted = await nudge.metric('nudge_events_accepted_total');
    const { page, seen } = await appPage('segment');
    await page.evaluate(
      async ({ writeKey, host }) => {
        const [analytics] = await window.AnalyticsBrowser.load(
          // Settings given here, so nothing is fetched from Segment's CDN.
          { writeKey, cdnSettings: { integrations: { 'Segment.io': { apiKey: writeKey } } } },
          { integrations: { 'Segment.io': { apiHost: host, protocol: 'http' } } },
        );
        // Each call resolves once its request is answered, so they arrive in this order.
        await analytics.identify('web-ada', { first_name: 'Ada', plan: 'pro', email: 'ada@example.com' });
        await analytics.page('Pricing');
        await analytics.track('Signed Up');
        await analytics.group('acme', { name: 'Acme' });
        await analytics.alias('web-ada', 'anonymous-ada');
      },
      { writeKey: WRITE_KEY, host: apiHost(nudge.base) },
    );
    assert.deepEqual(await titles('web-ada', 2), ['Questions about pricing?', 'Welcome, Ada']);
    const inbox = await nudge.inbox('web-ada');
    assert.equal(inbox.find((i) => i.title === 'Welcome, Ada').body, 'Signed up on the pro plan.');

    const posts = seen.requests.filter((r) => r.method === 'POST');
    assert.deepEqual(posts.map((r) => r.path), ['/v1/i', '/v1/p', '/v1/t', '/v1/g', '/v1/a']);
    for (const r of posts) {
      // The browser SDK's habits: a text/plain body, the key as Basic auth and in the body.
      assert.equal(r.headers['content-type'], 'text/plain');
      assert.equal(r.headers.authorization, `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`);
      assert.equal(JSON.parse(r.body).writeKey, WRITE_KEY);
    }
    assert.equal(await nudge.metric('nudge_events_accepted_total'), accepted + 5);
    assert.deepEqual(seen.errors, []);
    await page.close();
  });

  test('batches go to /v1/b, and what is left is sent with keepalive when the page goes away', async () => {
    const recorder = await proxy(nudge.base);
    const { page, seen } = await appPage('segment', recorder.base);
    try {
      await page.evaluate(
        async ({ writeKey, host }) => {
          const [analytics] = await window.AnalyticsBrowser.load(
            { writeKey, cdnSettings: { integrations: { 'Segment.io': { apiKey: writeKey } } } },
            {
              integrations: {
                'Segment.io': {
                  apiHost: host,
                  protocol: 'http',
                  // Three events a batch; the rest would wait a minute, but the page leaves first.
                  deliveryStrategy: { strategy: 'batching', config: { size: 3, timeout: 60_000 } },
                },
              },
            },
          );
          await analytics.identify('web-bo', { first_name: 'Bo' });
          await analytics.track('Step Completed', { step: 'one' });
          await analytics.track('Step Completed', { step: 'two' });
          await analytics.track('Step Completed', { step: 'three' });
          await analytics.track('Step Completed', { step: 'four' });
        },
        { writeKey: WRITE_KEY, host: apiHost(recorder.base) },
      );
      await eventually(() => recorder.requests.some((r) => r.path === '/v1/b'));
      // Leaving the page flushes the last two (`pagehide`), on a keepalive request (which
      // outlives the page: the page itself reports it aborted).
      const errorsBefore = [...seen.errors];
      await page.goto('about:blank');
      assert.deepEqual(await titles('web-bo', 4), ['four done', 'one done', 'three done', 'two done']);
      const batches = recorder.requests.filter((r) => r.method === 'POST' && r.path === '/v1/b');
      assert.equal(batches.length, 2, JSON.stringify(recorder.requests.map((r) => r.path)));
      const [first, last] = batches.map((r) => JSON.parse(r.body));
      // The identify and the first two tracks fill the first batch.
      assert.deepEqual(first.batch.map((e) => e.type), ['identify', 'track', 'track']);
      assert.equal(first.writeKey, WRITE_KEY);
      assert.equal(batches[0].headers['content-type'], 'text/plain');
      assert.deepEqual(last.batch.map((e) => e.properties.step), ['three', 'four']);
      const inbox = await nudge.inbox('web-bo');
      assert.ok(inbox.every((i) => i.body === 'Well done, Bo.'), JSON.stringify(inbox));
      assert.deepEqual(errorsBefore, []);
    } finally {
      await page.close();
      await recorder.close();
    }
  });

  test('an answer lost on the way is retried with X-Retry-Count and counted once', async () => {
    const flaky = await proxy(nudge.base, { loseFirst: '/v1/t' });
    const retries = await nudge.metric('nudge_client_retries_total');
    const { page, seen } = await appPage('segment', flaky.base);
    try {
      await page.evaluate(
        async ({ writeKey, host }) => {
          const [analytics] = await window.AnalyticsBrowser.load(
            { writeKey, cdnSettings: { integrations: { 'Segment.io': { apiKey: writeKey } } } },
            { integrations: { 'Segment.io': { apiHost: host, protocol: 'http' } } },
          );
          await analytics.identify('web-cy', { first_name: 'Cy' });
          // nudge keeps it, the proxy answers 503; analytics.js backs off and sends it again.
          analytics.track('Step Completed', { step: 'retried' });
        },
        { writeKey: WRITE_KEY, host: apiHost(flaky.base) },
      );
      const again = await eventually(
        () => seen.requests.find((r) => r.path === '/v1/t' && r.headers['x-retry-count']),
        20_000,
      );
      assert.ok(again, `no retry: ${JSON.stringify(seen.requests.map((r) => [r.path, r.headers['x-retry-count']]))}`);
      assert.ok(flaky.lostOne());
      const first = seen.requests.find((r) => r.path === '/v1/t');
      assert.equal(JSON.parse(first.body).messageId, JSON.parse(again.body).messageId);
      assert.ok(await eventually(async () => (await nudge.metric('nudge_client_retries_total')) > retries));
      // Both copies reached nudge; one message came of them.
      await titles('web-cy', 1);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(await titles('web-cy', 1), ['retried done']);
      // The only error the page saw is the lost answer itself.
      assert.ok(seen.errors.every((e) => e.includes('503')), JSON.stringify(seen.errors));
    } finally {
      await page.close();
      await flaky.close();
    }
  });
});

describe("RudderStack's JavaScript SDK (@rudderstack/analytics-js)", () => {
  /** Loads the SDK against nudge with a local source configuration (no RudderStack backend). */
  async function loadRudder(page, dataPlaneUrl, options) {
    await page.evaluate(
      async ({ writeKey, dataPlaneUrl, options }) => {
        const rudder = new window.RudderAnalytics();
        await new Promise((resolve) => {
          rudder.load(writeKey, dataPlaneUrl, {
            getSourceConfig: () => ({
              source: {
                id: 'nudge-test', name: 'nudge test', workspaceId: 'nudge', writeKey,
                enabled: true, config: {}, destinations: [],
              },
            }),
            onLoaded: resolve,
            ...options,
          });
        });
        window.rudder = rudder;
      },
      { writeKey: WRITE_KEY, dataPlaneUrl, options },
    );
  }

  test('identify, page and track over XHR reach nudge', async () => {
    const { page, seen } = await appPage('rudderstack');
    await loadRudder(page, nudge.base, {});
    await page.evaluate(() => {
      window.rudder.identify('rs-dee', { first_name: 'Dee', plan: 'team' });
      window.rudder.page('Docs', 'Pricing');
      window.rudder.track('Signed Up');
    });
    assert.deepEqual(await titles('rs-dee', 2), ['Questions about pricing?', 'Welcome, Dee']);
    const posts = seen.requests.filter((r) => r.method === 'POST').map((r) => r.path);
    assert.deepEqual(posts.sort(), ['/v1/identify', '/v1/page', '/v1/track']);
    assert.deepEqual(seen.errors, []);
    await page.close();
  });

  test('batched events go to /v1/batch', async () => {
    const { page, seen } = await appPage('rudderstack');
    await loadRudder(page, nudge.base, { queueOptions: { batch: { enabled: true, maxItems: 3, flushInterval: 60_000 } } });
    await page.evaluate(() => {
      window.rudder.identify('rs-eve', { first_name: 'Eve' });
      window.rudder.track('Step Completed', { step: 'a' });
      window.rudder.track('Step Completed', { step: 'b' });
    });
    assert.deepEqual(await titles('rs-eve', 2), ['a done', 'b done']);
    assert.ok(seen.requests.some((r) => r.path === '/v1/batch'), JSON.stringify(seen.requests.map((r) => r.path)));
    assert.deepEqual(seen.errors, []);
    await page.close();
  });

  test('the sendBeacon transport reaches nudge, also when the page goes away', async () => {
    const recorder = await proxy(nudge.base);
    const { page, seen } = await appPage('rudderstack', recorder.base);
    try {
      await loadRudder(page, recorder.base, {
        useBeacon: true,
        beaconQueueOptions: { maxItems: 10, flushQueueInterval: 60_000 },
      });
      await page.evaluate(() => {
        window.rudder.identify('rs-fay', { first_name: 'Fay' });
        window.rudder.track('Signed Up');
      });
      // Queued for a minute; leaving the page sends the queue with navigator.sendBeacon.
      await page.goto('about:blank');
      assert.deepEqual(await titles('rs-fay', 1), ['Welcome, Fay']);
      const beacons = recorder.requests.filter((r) => r.path === '/beacon/v1/batch');
      assert.equal(beacons.length, 1, JSON.stringify(recorder.requests.map((r) => r.path)));
      // A beacon carries no headers of its own: the key is in the query, the body is text.
      assert.equal(new URLSearchParams(beacons[0].query).get('writeKey'), WRITE_KEY);
      assert.match(beacons[0].headers['content-type'], /^text\/plain/);
      assert.equal(beacons[0].headers.authorization, undefined);
      assert.deepEqual(seen.errors, []);
    } finally {
      await page.close();
      await recorder.close();
    }
  });
});
