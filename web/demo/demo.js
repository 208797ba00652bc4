// The demo page's app code: a demo user from nudge serve's /demo/session (a fresh id, its
// inbox hash and the write key), analytics.js pointed at this server, buttons that send the
// SaaS example's onboarding events.
(async () => {
  'use strict';
  const log = document.getElementById('log');
  const say = (line) => { log.textContent = `${new Date().toLocaleTimeString()}  ${line}\n${log.textContent}`; };

  let session = JSON.parse(sessionStorage.getItem('nudge-demo') || 'null');
  if (!session) {
    const res = await fetch('/demo/session', { method: 'POST' });
    session = await res.json();
    sessionStorage.setItem('nudge-demo', JSON.stringify(session));
  }
  document.getElementById('user').textContent = session.user_id;

  const inbox = document.getElementById('inbox');
  inbox.setAttribute('api', location.origin);
  inbox.setAttribute('user-hash', session.user_hash);
  inbox.setAttribute('user-id', session.user_id);

  const [analytics] = await window.AnalyticsBrowser.load(
    // Settings given here: nothing is fetched from Segment's CDN.
    { writeKey: session.write_key, cdnSettings: { integrations: { 'Segment.io': { apiKey: session.write_key } } } },
    { integrations: { 'Segment.io': { apiHost: `${location.host}/v1`, protocol: location.protocol.replace(':', '') } } },
  );
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  await analytics.identify(session.user_id, { first_name: 'Demo', email: `${session.user_id}@example.com`, timezone: zone });
  say(`identify ${session.user_id} (time zone ${zone})`);

  const track = async (event, properties) => {
    await analytics.track(event, properties || {});
    say(`track ${event}${properties ? ` ${JSON.stringify(properties)}` : ''}`);
  };
  const on = (id, fn) => document.getElementById(id).addEventListener('click', fn);

  const steps = ['account', 'profile', 'team', 'integrations', 'payment'];
  const list = document.getElementById('steps');
  steps.forEach((step, i) => {
    const li = document.createElement('li');
    li.append(`${step} `);
    const props = { step, step_index: i + 1 };
    for (const [label, event] of [['View', 'Onboarding Step Viewed'], ['Complete', 'Onboarding Step Completed'], ['Skip', 'Onboarding Step Skipped']]) {
      const b = document.createElement('button');
      b.textContent = label;
      b.addEventListener('click', () => track(event, props));
      li.append(b);
    }
    list.append(li);
  });
  on('signup', () => track('Signed Up'));
  on('complete', () => track('Onboarding Completed'));
  on('feature', () => track('Feature Used', { feature: 'reports' }));
  on('login-failed', () => track('Login Failed'));
  on('payment', () => track('Button Clicked', { label: 'Connect Payment Method' }));
  on('article', () => track('Help Article Viewed', { article: 'getting-started' }));
})();
