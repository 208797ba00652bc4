// The in-app inbox widget (web/inbox/inbox.js, served at /v1/sdk/inbox.js) in headless
// Chromium, on a page of another origin, against a real `nudge serve`: it renders the inbox,
// a new message arrives live (server-sent events), reading, dismissing and following a link
// work (and are refused for another user's hash), untrusted text stays text, the keyboard
// works, it polls with If-None-Match where the server cannot stream, and the demo page
// shows the whole product in one go.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { launchChromium, serveOrigin, watch } from './support/browser.mjs';
import { proxy } from './support/proxy.mjs';
import { ROOT, WRITE_KEY, eventually, startNudge, userHash } from './support/nudge.mjs';

const RULES = path.join(ROOT, 'tests', 'sdk-rules');

let nudge;
let site;
let chromium;
let pages;

before(async () => {
  pages = mkdtempSync(path.join(tmpdir(), 'nudge-widget-pages-'));
  writeFileSync(path.join(pages, 'landing.html'), '<!doctype html><title>Landing</title><h1>landed</h1>');
  site = await serveOrigin(pages);
  nudge = await startNudge(RULES);
  chromium = await launchChromium();
});

after(async () => {
  await chromium?.close();
  await site?.close();
  await nudge?.stop();
  rmSync(pages, { recursive: true, force: true });
});

/** Sends events for `user` to nudge as an app's server would (Basic auth). */
async function send(user, events) {
  const res = await fetch(`${nudge.base}/v1/batch`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`,
    },
    body: JSON.stringify({ batch: events.map((e) => ({ userId: user, ...e })) }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** A page of the app's origin with the widget for `user`, pointed at `api`. */
async function widgetPage(user, { api = nudge.base, hash = userHash(user), attrs = '' } = {}) {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>app</title>
    <script src="${nudge.base}/v1/sdk/inbox.js"></script></head>
    <body><h1>app</h1><button id="before">before</button>
    <nudge-inbox api="${api}" user-id="${user}" user-hash="${hash}" ${attrs}></nudge-inbox>
    <p id="after">after</p></body></html>`;
  const file = `${user}.html`;
  writeFileSync(path.join(pages, file), html);
  const page = await chromium.context.newPage();
  const seen = watch(page, nudge.base);
  await page.goto(`${site.origin}/${file}`);
  return { page, seen };
}

/** What the widget shows: the bell's label, the badge, and the items' titles and bodies. */
async function shown(page) {
  return page.evaluate(() => {
    const root = document.querySelector('nudge-inbox').shadowRoot;
    const bell = root.querySelector('.bell');
    const badge = root.querySelector('.badge');
    return {
      label: bell.getAttribute('aria-label'),
      badge: badge.hidden ? null : badge.textContent,
      expanded: bell.getAttribute('aria-expanded'),
      items: [...root.querySelectorAll('li')].map((li) => ({
        title: li.querySelector('.title').textContent,
        body: li.querySelector('.body')?.textContent ?? null,
        unread: li.classList.contains('unread'),
        link: li.querySelector('a')?.getAttribute('href') ?? null,
        html: li.innerHTML,
      })),
    };
  });
}

async function until(page, predicate, what) {
  const got = await eventually(async () => {
    const s = await shown(page);
    return predicate(s) ? s : null;
  });
  assert.ok(got, `${what}: ${JSON.stringify(await shown(page))}`);
  return got;
}

describe('the inbox widget', () => {
  test('shows the inbox, gets new messages live, and reads, dismisses and follows them', async () => {
    const user = 'widget-ana';
    await send(user, [{ type: 'identify', traits: { first_name: 'Ana' } }, { type: 'track', event: 'Signed Up' }]);
    await eventually(async () => (await nudge.inbox(user)).length === 1);
    const { page, seen } = await widgetPage(user);

    // What is there at load, with the count on the bell.
    let s = await until(page, (x) => x.items.length === 1, 'the welcome message');
    assert.equal(s.badge, '1');
    assert.equal(s.label, 'Notifications, 1 unread');
    assert.equal(s.items[0].title, 'Welcome, Ana');

    // A new message arrives without a reload.
    await send(user, [{
      type: 'track', event: 'Offer Shown',
      properties: { title: 'Try reports', text: 'Reports are here.', url: `${site.origin}/landing.html` },
    }]);
    s = await until(page, (x) => x.items.length === 2, 'the offer, live');
    assert.equal(s.badge, '2');
    const offer = s.items.find((i) => i.title === 'Try reports');
    assert.equal(offer.body, 'Reports are here.');
    assert.match(offer.link, new RegExp(`^${nudge.base}/v1/c/`));

    // Opening the panel reads what it shows.
    await page.evaluate(() => document.querySelector('nudge-inbox').shadowRoot.querySelector('.bell').click());
    s = await until(page, (x) => x.badge === null, 'read on open');
    assert.equal(s.expanded, 'true');
    assert.ok(await eventually(async () => (await nudge.inbox(user)).every((i) => i.read_at)), 'read on the server');

    // The link goes through nudge's click endpoint to the page, and the click is an event
    // rules can name (this rule set answers it with a thank-you message).
    const popup = page.waitForEvent('popup');
    await page.evaluate(() => {
      const root = document.querySelector('nudge-inbox').shadowRoot;
      [...root.querySelectorAll('li')].find((li) => li.textContent.includes('Try reports')).querySelector('a').click();
    });
    const landed = await popup;
    await landed.waitForLoadState();
    assert.equal(landed.url(), `${site.origin}/landing.html`);
    await landed.close();
    s = await until(page, (x) => x.items.some((i) => i.title === 'Thanks for looking'), 'the click recorded');
    assert.equal(s.items.find((i) => i.title === 'Thanks for looking').body, 'You followed the link of "offer".');

    // Dismissing removes the message, here and on the server.
    await page.evaluate(() => {
      const root = document.querySelector('nudge-inbox').shadowRoot;
      [...root.querySelectorAll('li')].find((li) => li.textContent.includes('Welcome')).querySelector('.dismiss').click();
    });
    s = await until(page, (x) => !x.items.some((i) => i.title.startsWith('Welcome')), 'dismissed');
    assert.ok(await eventually(async () => !(await nudge.inbox(user)).some((i) => i.title.startsWith('Welcome'))));
    assert.deepEqual(seen.errors, []);
    await page.close();
  });

  test("another user's hash reads, marks and dismisses nothing", async () => {
    const [owner, other] = ['widget-owner', 'widget-other'];
    await send(owner, [{ type: 'identify', traits: { first_name: 'Olu' } }, { type: 'track', event: 'Signed Up' }]);
    const [item] = await eventually(async () => {
      const items = await nudge.inbox(owner);
      return items.length ? items : null;
    });
    for (const [method, suffix] of [['GET', ''], ['GET', '/stream'], ['POST', `/${item.id}/read`], ['POST', `/${item.id}/dismiss`]]) {
      const res = await fetch(`${nudge.base}/v1/users/${owner}/inbox${suffix}`, {
        method,
        headers: { 'X-User-Hash': userHash(other) },
      });
      assert.equal(res.status, 403, `${method} ${suffix}`);
    }
    assert.equal((await nudge.inbox(owner))[0].read_at, null);

    // A widget given the wrong hash shows nothing, and breaks nothing on the page.
    const { page } = await widgetPage(owner, { hash: userHash(other) });
    await new Promise((r) => setTimeout(r, 500));
    const s = await shown(page);
    assert.deepEqual([s.items.length, s.badge], [0, null]);
    await page.close();
  });

  test('untrusted text is shown as text', async () => {
    const user = 'widget-eve';
    const evil = '<img src=x onerror="window.__pwned = 1">';
    await send(user, [{ type: 'identify', traits: { first_name: evil } }, { type: 'track', event: 'Signed Up' }]);
    const { page, seen } = await widgetPage(user);
    const s = await until(page, (x) => x.items.length === 1, 'the welcome message');
    assert.equal(s.items[0].title, `Welcome, ${evil}`);
    assert.ok(!s.items[0].html.includes('<img'), s.items[0].html);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.equal(await page.evaluate(() => document.querySelector('nudge-inbox').shadowRoot.querySelectorAll('img').length), 0);
    assert.deepEqual(seen.errors, []);
    await page.close();
  });

  test('works from the keyboard and names itself to screen readers', async () => {
    const user = 'widget-kim';
    await send(user, [{ type: 'identify', traits: { first_name: 'Kim' } }, { type: 'track', event: 'Signed Up' }]);
    const { page } = await widgetPage(user);
    await until(page, (x) => x.items.length === 1, 'the welcome message');
    await page.focus('#before');
    await page.keyboard.press('Tab');
    const focused = () => page.evaluate(() => {
      const host = document.activeElement;
      const inner = host?.shadowRoot?.activeElement;
      return inner ? `${host.tagName.toLowerCase()}:${inner.className || inner.tagName.toLowerCase()}` : host?.id;
    });
    assert.equal(await focused(), 'nudge-inbox:bell');
    await page.keyboard.press('Enter');
    let s = await shown(page);
    assert.equal(s.expanded, 'true');
    // Focus moves into the panel; its dismiss buttons say what they dismiss.
    assert.equal(await focused(), 'nudge-inbox:dismiss');
    const names = await page.evaluate(() => {
      const root = document.querySelector('nudge-inbox').shadowRoot;
      return {
        dialog: root.querySelector('[role=dialog]').getAttribute('aria-labelledby'),
        heading: root.querySelector('h2').id,
        dismiss: root.querySelector('.dismiss').getAttribute('aria-label'),
        live: root.querySelector('[aria-live]') !== null,
      };
    });
    assert.equal(names.dialog, names.heading);
    assert.equal(names.dismiss, 'Dismiss: Welcome, Kim');
    assert.ok(names.live);
    await page.keyboard.press('Escape');
    s = await shown(page);
    assert.equal(s.expanded, 'false');
    assert.equal(await focused(), 'nudge-inbox:bell');
    await page.close();
  });

  test('where the server cannot stream, it polls with If-None-Match', async () => {
    const user = 'widget-pat';
    await send(user, [{ type: 'identify', traits: { first_name: 'Pat' } }, { type: 'track', event: 'Signed Up' }]);
    // A proxy that answers the stream as API Gateway's Lambda does (501).
    const noStream = await proxy(nudge.base, { answer: { '/v1/users/widget-pat/inbox/stream': 501 } });
    try {
      const { page, seen } = await widgetPage(user, { api: noStream.base, attrs: 'poll="2"' });
      await until(page, (x) => x.items.length === 1, 'the first poll');
      await send(user, [{ type: 'track', event: 'Step Completed', properties: { step: 'polled' } }]);
      await until(page, (x) => x.items.some((i) => i.title === 'polled done'), 'a later poll');
      const polls = noStream.requests.filter((r) => r.method === 'GET' && r.path === `/v1/users/${user}/inbox`);
      assert.ok(polls.some((r) => r.headers['if-none-match']), JSON.stringify(polls.map((r) => r.headers)));
      assert.deepEqual(seen.errors.filter((e) => !e.includes('501')), []);
      await page.close();
    } finally {
      await noStream.close();
    }
  });
});

describe('the demo page', () => {
  let saas;
  before(async () => {
    saas = await startNudge(path.join(ROOT, 'examples', 'saas-onboarding'));
  });
  after(async () => {
    await saas?.stop();
  });

  test('sends onboarding events with analytics.js and shows the nudges in the widget', async () => {
    const page = await chromium.context.newPage();
    const seen = watch(page, saas.base);
    await page.goto(`${saas.base}/demo`);
    await page.waitForFunction(() => document.getElementById('user').textContent.startsWith('demo-'));
    await page.click('#signup');
    for (let i = 0; i < 3; i++) await page.click('#login-failed');
    const s = await until(page, (x) => x.items.some((i) => i.title === 'Having trouble signing in?'), 'login help');
    assert.equal(s.badge, '1');
    assert.deepEqual(seen.errors, []);
    if (process.env.NUDGE_SCREENSHOT) {
      await page.click('#payment');
      await until(page, (x) => x.items.length === 2, 'the billing tip');
      await page.setViewportSize({ width: 900, height: 620 });
      await page.evaluate(() => document.querySelector('nudge-inbox').shadowRoot.querySelector('.bell').click());
      await page.screenshot({ path: process.env.NUDGE_SCREENSHOT });
    }
    await page.close();
  });
});
