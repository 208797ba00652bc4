// Renders the report embedded in the page (`#report-data`, the JSON of GET
// /v1/admin/reports) with Chart.js: the triggers table, a bar chart per funnel (split by its
// breakdown) and per experiment the 95% interval of each variant's rate, with the
// comparisons and their verdicts. Every text from the report is set as text, never as HTML:
// trait values and ids come from outside.
(() => {
  'use strict';
  const report = JSON.parse(document.getElementById('report-data').textContent);

  const el = (tag, props = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  };
  const num = (x) => (x == null ? '–' : Number(x).toLocaleString('en-US'));
  const pct = (x) => (x == null ? '–' : `${(x * 100).toFixed(1)}%`);
  const secs = (s) => {
    if (s == null) return '–';
    if (s < 120) return `${Math.round(s)}s`;
    if (s < 7200) return `${Math.round(s / 60)}m`;
    if (s < 172800) return `${(s / 3600).toFixed(1)}h`;
    return `${(s / 86400).toFixed(1)}d`;
  };
  const cell = (text, cls) => el('td', cls ? { class: cls, text } : { text });
  const palette = ['#3b5bdb', '#e8590c', '#2b8a3e', '#ae3ec9', '#1098ad', '#f08c00', '#c92a2a', '#5f3dc4'];

  document.getElementById('summary').textContent =
    `${report.period.from} to ${report.period.to}: ${num(report.events)} events from about ` +
    `${num(report.users)} users`;

  // Triggers, each followed by its variants.
  const columns = [
    ['trigger', 'text'], ['channel', 'text'], ['goal', 'text'], ['started'], ['cancelled'],
    ['waiting'], ['sent'], ['suppressed'], ['failed'], ['delivered'], ['opened'], ['clicked'],
    ['dismissed'], ['converted'], ['conversion'], ['click rate'], ['value'], ['latency p50'],
    ['latency p99'],
  ];
  const table = document.getElementById('trigger-table');
  table.append(el('thead', {}, el('tr', {}, ...columns.map(([c, cls]) =>
    el('th', { scope: 'col', text: c, ...(cls ? { class: cls } : {}) })))));
  const body = el('tbody');
  const suppressed = (s) => Object.values(s || {}).reduce((a, b) => a + b, 0);
  const counts = (c) => [
    cell(num(c.started)), cell(num(c.cancelled)), cell(c.waiting == null ? '' : num(c.waiting)),
    cell(num(c.sent)), suppressedCell(c.suppressed), cell(num(c.failed)), cell(num(c.delivered)),
    cell(num(c.opened)), cell(num(c.clicked)), cell(num(c.dismissed)), cell(num(c.converted)),
    cell(pct(c.conversion_rate)), cell(pct(c.click_rate)), cell(num(c.value)),
  ];
  function suppressedCell(s) {
    const td = cell(num(suppressed(s)));
    const reasons = Object.entries(s || {}).map(([r, n]) => `${r}: ${n}`).join(', ');
    if (reasons) td.title = reasons;
    return td;
  }
  for (const t of report.triggers) {
    body.append(el('tr', { class: 'trigger' }, cell(t.trigger), cell(t.channel, 'text'),
      cell(t.goal ?? '–', 'text'), ...counts(t), cell(secs(t.latency_s.p50)), cell(secs(t.latency_s.p99))));
    if (t.variants.length > 1 || (t.variants[0] && t.variants[0].variant !== 'default')) {
      for (const v of t.variants) {
        body.append(el('tr', { class: 'variant' }, cell(v.variant), cell(''), cell(''),
          ...counts({ ...v, waiting: null }), cell(''), cell('')));
      }
    }
  }
  table.append(body);

  const charts = [];
  const chart = (container, label, config) => {
    const canvas = el('canvas', { role: 'img', 'aria-label': label });
    container.append(el('div', { class: 'chart' }, canvas));
    config.options = { responsive: true, maintainAspectRatio: false, animation: false, ...config.options };
    charts.push(new window.Chart(canvas, config));
  };

  // Funnels: users at each step, by breakdown value when there is one.
  const funnels = document.getElementById('funnels');
  if (report.funnels.length === 0) funnels.append(el('p', { class: 'muted', text: 'No funnels in these rules.' }));
  for (const f of report.funnels) {
    const section = el('section', { class: 'funnel' });
    section.append(el('h3', { text: `${f.funnel} (within ${secs(f.within_s)})` }));
    const steps = f.steps.map((s) => s.step);
    const datasets = [{ label: 'all users', data: f.steps.map((s) => s.users), backgroundColor: palette[0] }];
    for (const [i, v] of (f.breakdown?.values ?? []).entries()) {
      datasets.push({ label: `${f.breakdown.by} = ${v.value}`, data: v.steps.map((s) => s.users),
        backgroundColor: palette[(i + 1) % palette.length] });
    }
    chart(section, `Funnel ${f.funnel}: users at each step`, {
      type: 'bar',
      data: { labels: steps, datasets },
      options: { indexAxis: 'y', scales: { x: { beginAtZero: true, title: { display: true, text: 'users' } } } },
    });
    const t = el('table', { class: 'steps' });
    t.append(el('thead', {}, el('tr', {}, ...['step', 'users', 'of previous', 'of start', 'median from previous']
      .map((c, i) => el('th', { scope: 'col', text: c, ...(i === 0 ? { class: 'text' } : {}) })))));
    const tb = el('tbody');
    for (const s of f.steps) {
      tb.append(el('tr', {}, cell(s.step), cell(num(s.users)), cell(pct(s.rate_from_previous)),
        cell(pct(s.rate_from_start)), cell(secs(s.median_s_from_previous))));
    }
    t.append(tb);
    section.append(t);
    if (f.breakdown && f.breakdown.values.length > 0) {
      const bt = el('table', { class: 'breakdown' });
      bt.append(el('thead', {}, el('tr', {}, el('th', { scope: 'col', class: 'text', text: f.breakdown.by }),
        ...steps.map((s) => el('th', { scope: 'col', text: s })))));
      const bb = el('tbody');
      for (const v of f.breakdown.values) {
        bb.append(el('tr', {}, cell(v.value), ...v.steps.map((s) => cell(num(s.users)))));
      }
      bt.append(bb);
      section.append(bt);
    }
    funnels.append(section);
  }

  // Experiments: each variant's rate with its 95% interval, then the comparisons.
  const experiments = document.getElementById('experiments');
  if (report.experiments.length === 0) experiments.append(el('p', { class: 'muted', text: 'No experiments in these rules.' }));
  for (const e of report.experiments) {
    const section = el('section', { class: 'experiment' });
    section.append(el('h3', { text: `${e.experiment} (goal: ${e.goal ?? 'none'}; control ${e.control})` }));
    const arms = e.variants;
    chart(section, `Experiment ${e.experiment}: conversion rate and 95% interval of each variant`, {
      type: 'bar',
      data: {
        labels: arms.map((a) => a.variant),
        datasets: [{
          label: '95% interval of the conversion rate (%)',
          data: arms.map((a) => (a.ci95 ? [a.ci95[0] * 100, a.ci95[1] * 100] : null)),
          backgroundColor: arms.map((_, i) => palette[i % palette.length]),
          barPercentage: 0.5,
        }],
      },
      options: {
        indexAxis: 'y',
        scales: { x: { min: 0, title: { display: true, text: 'conversion rate (%)' } } },
        plugins: {
          tooltip: {
            callbacks: {
              label: (ctx) => {
                const a = arms[ctx.dataIndex];
                return `${pct(a.rate)} of ${num(a.users)} users (95% ${pct(a.ci95?.[0])} to ${pct(a.ci95?.[1])})`;
              },
            },
          },
        },
      },
    });
    const vt = el('table', { class: 'variants' });
    vt.append(el('thead', {}, el('tr', {}, ...['variant', 'users', 'converted', 'rate', '95% interval', 'value', 'value per user']
      .map((c, i) => el('th', { scope: 'col', text: c, ...(i === 0 ? { class: 'text' } : {}) })))));
    const vb = el('tbody');
    for (const a of arms) {
      vb.append(el('tr', {}, cell(a.variant), cell(num(a.users)), cell(num(a.converted)), cell(pct(a.rate)),
        cell(a.ci95 ? `${pct(a.ci95[0])} – ${pct(a.ci95[1])}` : '–'), cell(num(a.value)),
        cell(a.value_per_user == null ? '–' : a.value_per_user.toFixed(2))));
    }
    vt.append(vb);
    section.append(vt);
    const ct = el('table', { class: 'comparisons' });
    const points = (x) => (x == null ? '–' : `${(x * 100).toFixed(1)} pts`);
    const range = (ci) => (ci ? `${points(ci[0])} to ${points(ci[1])}` : '–');
    const p = (x) => (x == null ? '–' : x.toFixed(3));
    ct.append(el('thead', {}, el('tr', {}, ...['comparison', 'difference', '95% interval (one look)', 'p',
      '95% anytime', 'anytime p', 'verdict'].map((c, i) => el('th', { scope: 'col', text: c, ...(i === 0 || i === 6 ? { class: 'text' } : {}) })))));
    const cb = el('tbody');
    for (const c of e.comparisons) {
      const win = c.anytime.conclusive ? (c.difference > 0 ? ' win' : ' loss') : '';
      cb.append(el('tr', {}, cell(`${c.variant} vs ${c.against}`), cell(points(c.difference)), cell(range(c.ci95)),
        cell(p(c.p_value)), cell(range(c.anytime.ci95)), cell(p(c.anytime.p_value)),
        el('td', { class: `text verdict${win}`, text: c.verdict })));
      if (c.note) cb.append(el('tr', {}, el('td', { class: 'note', colspan: '7', text: c.note })));
    }
    ct.append(cb);
    section.append(ct);
    experiments.append(section);
  }

  document.body.dataset.rendered = String(charts.length);
})();
