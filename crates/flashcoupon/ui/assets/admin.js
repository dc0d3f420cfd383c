// The admin console: campaigns (create, edit, pause/resume; issued by the
// claim button, unique codes, a shared code or a trigger), a live dashboard
// per campaign (issued vs remaining, claims per second, outcomes, latency,
// winners in seq order with CSV export; for a unique-codes campaign, code
// jobs with their progress and the codes' CSV), service keys, and a
// member's points (적립금): found by e-mail, their balance, expiries and
// history, and an adjustment with a reason; time sales (타임세일): create,
// list, pause/resume, stock and end, and a page per sale with its orders by
// status, revenue, discounts and points given.

import {
  api, ApiError, applyLabels, dateTime, discountText, entryNote, expiryItems, h, newId, num, onLangChange, points,
  pointsKind, Session, setupLangToggle, signedPoints, t, toast, won,
} from './common.js';

const session = new Session('admin');
const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';

// The API's limits (domain/campaign.rs, domain/discount.rs), mirrored so the
// form says what is wrong before anything is sent; the API checks again.
const MAX_MONEY = 1_000_000_000_000;
const MAX_TOTAL = 1_000_000_000;
const MAX_PER_USER = 1_000;
const MAX_VALID_DAYS = 3_650;
const OUTCOMES = ['issued', 'replayed', 'sold_out', 'limit_reached', 'refused', 'rate_limited', 'errors'];
const CHART_SECONDS = 120;
const MAX_JOB_CODES = 10_000_000;
/** API.md's shapes: a shared code, a custom trigger's name, a code pattern. */
const SHARED_CODE = /^[A-Za-z0-9-]{4,32}$/;
const TRIGGER_NAME = /^[a-z0-9_.-]{1,64}$/;
const PATTERN = /^[A-Z0-9#-]{1,64}$/;
const MIN_PATTERN_RANDOM = 10;
/** How often a running code job is asked how far it got. */
const JOB_POLL_MS = 500;
/** An adjustment's limit either way (points.rs); history rows per page; expiries listed. */
const MAX_POINTS = 1_000_000_000_000;
const POINTS_PAGE = 20;
const EXPIRIES_SHOWN = 5;

let campaigns = [];
/** The open dashboard: {id, campaign, stats, shown, dense, max, more, stop()}. */
let dash = null;

// ---- routing ------------------------------------------------------------------------

function route() {
  if (dash) {
    dash.stop();
    dash = null;
  }
  if (saleDash) {
    saleDash.stop();
    saleDash = null;
  }
  clearTimeout(salesTimer);
  const signed = session.signedIn && session.role === 'admin';
  $('auth').hidden = signed;
  $('who').textContent = signed ? session.email : '';
  $('logout').hidden = !signed;
  // `#/campaign/{id}/codes`: the same dashboard, at its codes panel.
  const m = location.hash.match(/^#\/campaign\/([\w-]+)(\/codes)?$/);
  const keys = location.hash === '#/keys';
  const pointsView = location.hash === '#/points';
  const salesView = location.hash === '#/sales';
  const sale = location.hash.match(/^#\/sale\/([\w-]+)$/);
  $('list-view').hidden = !signed || Boolean(m) || keys || pointsView || salesView || Boolean(sale);
  $('dash-view').hidden = !signed || !m;
  $('keys-view').hidden = !signed || !keys;
  $('points-view').hidden = !signed || !pointsView;
  $('sales-view').hidden = !signed || !salesView;
  $('sale-view').hidden = !signed || !sale;
  if (!signed) {
    $('email').focus();
    return;
  }
  if (m) openDashboard(m[1], Boolean(m[2]));
  else if (keys) loadKeys();
  else if (pointsView) openPoints();
  else if (salesView) openSales();
  else if (sale) openSale(sale[1]);
  else loadCampaigns();
}

async function login(e) {
  e.preventDefault();
  $('auth-error').textContent = '';
  const email = $('email').value.trim();
  try {
    const r = await api(null, 'POST', '/api/v1/auth/login', { email, password: $('password').value });
    if (r.role !== 'admin') {
      $('auth-error').textContent = t('auth.not_admin');
      return;
    }
    session.save({ token: r.token, email, userId: r.user_id, role: r.role });
    $('password').value = '';
    route();
  } catch (err) {
    $('auth-error').textContent = err.text;
  }
}

function logout() {
  session.clear();
  member = null;
  adjusting = null;
  renderMember();
  location.hash = '#/';
  route();
}

/** An API call as the admin; an expired session goes back to the log-in. */
async function call(method, path, body) {
  try {
    return await api(session, method, path, body);
  } catch (err) {
    if (err.code === 'unauthorized' || err.code === 'forbidden') logout();
    throw err;
  }
}

// ---- the campaign list ------------------------------------------------------------------

async function loadCampaigns() {
  try {
    campaigns = (await call('GET', '/api/v1/campaigns?limit=200')).campaigns;
  } catch (err) {
    toast(err.text, 'error');
    return;
  }
  renderCampaigns();
}

function renderCampaigns() {
  const rows = campaigns.map((c) => h('tr', { 'data-campaign': c.id, 'data-testid': 'campaign-row' },
    h('td', {}, h('a', { href: `#/campaign/${c.id}` }, c.name),
      h('div', { class: 'muted small' }, discountText(c.discount)),
      issuanceText(c) ? h('div', { class: 'muted small', 'data-testid': 'issuance' }, issuanceText(c)) : null),
    h('td', {}, h('span', { class: `badge status-${c.status}` }, t(`status.${c.status}`))),
    h('td', { class: 'num' }, `${num(c.issued_count)} / ${num(c.total_quantity)}`),
    h('td', { class: 'small' }, `${dateTime(c.issue_starts_at)} – ${dateTime(c.issue_ends_at)}`),
    h('td', {},
      h('div', { class: 'row' },
        h('a', { href: `#/campaign/${c.id}`, 'data-testid': 'open-dashboard' }, t('admin.dashboard')),
        c.issuance === 'codes' ? h('a', { href: `#/campaign/${c.id}/codes`, 'data-testid': 'open-codes' }, t('admin.codes')) : null,
        h('button', { type: 'button', class: 'secondary', onclick: () => togglePause(c) }, c.paused ? t('admin.resume') : t('admin.pause')),
        h('button', { type: 'button', class: 'secondary', onclick: () => showForm(c) }, t('admin.edit'))))));
  $('campaign-rows').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 5, class: 'muted' }, t('admin.empty')))]));
}

/** How a campaign issues, when not by the plain claim button; else ''. */
function issuanceText(c) {
  if (c.trigger) return t('admin.auto_short', { trigger: triggerLabel(c.trigger) });
  if (c.issuance === 'codes') return t('issuance.codes');
  if (c.issuance === 'shared_code') return t('codes.shared', { code: c.code ?? '' });
  return '';
}

function triggerLabel(trigger) {
  return trigger.startsWith('custom:') ? `${t('trigger.opt.custom')} ${trigger.slice('custom:'.length)}` : t(`trigger.opt.${trigger}`);
}

async function togglePause(c) {
  try {
    await call('PATCH', `/api/v1/campaigns/${c.id}`, { paused: !c.paused });
  } catch (err) {
    toast(err.text, 'error');
  }
  if (dash) refreshDashboard(dash);
  else loadCampaigns();
}

// ---- create and edit ----------------------------------------------------------------------

/** `datetime-local` works in the browser's zone; the API in UTC. */
function toLocalInput(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fromLocalInput(value) {
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function field(id, labelKey, input) {
  input.id = id;
  input.setAttribute('aria-describedby', `${id}-error`);
  return h('div', { 'data-field': id },
    h('label', { for: id }, t(labelKey)), input,
    h('p', { class: 'field-error', id: `${id}-error`, 'aria-live': 'polite' }));
}

function numberInput(attrs = {}) {
  return h('input', { type: 'number', step: 1, inputmode: 'numeric', ...attrs });
}

function showForm(existing) {
  const host = $('form-host');
  const editing = Boolean(existing);
  const start = new Date(Date.now() + 5 * 60_000);
  start.setSeconds(0, 0);
  const c = existing ?? {
    name: '', discount: { type: 'fixed', amount: 5000 }, min_order_amount: 0, total_quantity: 100,
    per_user_limit: 1, issue_starts_at: start.toISOString(), issue_ends_at: new Date(start.getTime() + 3_600_000).toISOString(),
    valid_days: 30,
  };
  const inputs = {
    name: h('input', { type: 'text', maxlength: 200, value: c.name, required: true }),
    type: h('select', {}, h('option', { value: 'fixed' }, t('form.fixed')), h('option', { value: 'percent' }, t('form.percent'))),
    amount: numberInput({ min: 1, value: c.discount.amount ?? '' }),
    percent: numberInput({ min: 1, max: 100, value: c.discount.percent ?? '' }),
    max_amount: numberInput({ min: 1, value: c.discount.max_amount ?? '' }),
    min_order_amount: numberInput({ min: 0, value: c.min_order_amount }),
    total_quantity: numberInput({ min: 1, value: c.total_quantity }),
    per_user_limit: numberInput({ min: 1, max: MAX_PER_USER, value: c.per_user_limit }),
    issue_starts_at: h('input', { type: 'datetime-local', step: 1, value: toLocalInput(c.issue_starts_at) }),
    issue_ends_at: h('input', { type: 'datetime-local', step: 1, value: toLocalInput(c.issue_ends_at) }),
    valid_days: numberInput({ min: 1, max: MAX_VALID_DAYS, value: c.valid_days ?? '' }),
    valid_until: h('input', { type: 'datetime-local', step: 1, value: c.valid_until ? toLocalInput(c.valid_until) : '' }),
    issuance: h('select', { 'data-testid': 'issuance' },
      ...['claim', 'codes', 'shared_code'].map((v) => h('option', { value: v }, t(`issuance.${v}`)))),
    code: h('input', {
      type: 'text', maxlength: 32, value: c.code ?? '', autocomplete: 'off', spellcheck: 'false', class: 'code-input', placeholder: t('form.code_hint'),
    }),
    trigger: h('select', {},
      h('option', { value: '' }, t('trigger.none')),
      ...['signup', 'first_order_paid', 'custom'].map((v) => h('option', { value: v }, t(`trigger.opt.${v}`)))),
    trigger_name: h('input', { type: 'text', maxlength: 64, autocomplete: 'off', spellcheck: 'false', placeholder: t('form.trigger_name_hint') }),
  };
  inputs.type.value = c.discount.type;
  inputs.issuance.value = c.issuance ?? 'claim';
  if (c.trigger?.startsWith('custom:')) {
    inputs.trigger.value = 'custom';
    inputs.trigger_name.value = c.trigger.slice('custom:'.length);
  } else {
    inputs.trigger.value = c.trigger ?? '';
  }
  const byDays = h('input', { type: 'radio', name: 'validity', value: 'days', checked: c.valid_until ? null : true });
  const byUntil = h('input', { type: 'radio', name: 'validity', value: 'until', checked: c.valid_until ? true : null });
  const formError = h('p', { class: 'error', role: 'alert', 'data-testid': 'form-error' });

  const fields = {
    name: field('f-name', 'form.name', inputs.name),
    type: field('f-type', 'form.discount_type', inputs.type),
    amount: field('f-amount', 'form.amount', inputs.amount),
    percent: field('f-percent', 'form.percent_value', inputs.percent),
    max_amount: field('f-max', 'form.max_amount', inputs.max_amount),
    min_order_amount: field('f-min-order', 'form.min_order', inputs.min_order_amount),
    total_quantity: field('f-total', 'form.total', inputs.total_quantity),
    per_user_limit: field('f-per-user', 'form.per_user', inputs.per_user_limit),
    issue_starts_at: field('f-starts', 'form.starts', inputs.issue_starts_at),
    issue_ends_at: field('f-ends', 'form.ends', inputs.issue_ends_at),
    valid_days: field('f-valid-days', 'form.valid_days', inputs.valid_days),
    valid_until: field('f-valid-until', 'form.valid_until', inputs.valid_until),
    issuance: field('f-issuance', 'form.issuance', inputs.issuance),
    code: field('f-code', 'form.code', inputs.code),
    trigger: field('f-trigger', 'form.trigger', inputs.trigger),
    trigger_name: field('f-trigger-name', 'form.trigger_name', inputs.trigger_name),
  };
  const sync = () => {
    // A shared code only for a shared_code campaign; a trigger only for claim.
    const issuance = inputs.issuance.value;
    fields.code.hidden = issuance !== 'shared_code';
    fields.trigger.hidden = issuance !== 'claim';
    fields.trigger_name.hidden = issuance !== 'claim' || inputs.trigger.value !== 'custom';
    const percent = inputs.type.value === 'percent';
    fields.amount.hidden = percent;
    fields.percent.hidden = !percent;
    fields.max_amount.hidden = !percent;
    fields.valid_days.hidden = !byDays.checked;
    fields.valid_until.hidden = byDays.checked;
  };
  inputs.type.addEventListener('change', sync);
  inputs.issuance.addEventListener('change', sync);
  inputs.trigger.addEventListener('change', sync);
  byDays.addEventListener('change', sync);
  byUntil.addEventListener('change', sync);
  if (editing) {
    // PATCH changes only these; the rest is shown for reference.
    for (const [k, el] of Object.entries(inputs)) el.disabled = !['total_quantity', 'issue_ends_at'].includes(k);
    byDays.disabled = true;
    byUntil.disabled = true;
  }
  sync();

  const submit = async (e) => {
    e.preventDefault();
    for (const f of Object.values(fields)) {
      f.querySelector('.field-error').textContent = '';
      f.querySelector('input, select').removeAttribute('aria-invalid');
    }
    formError.textContent = '';
    const { body, errors } = editing ? readPatch(inputs, existing) : readCampaign(inputs, byDays.checked);
    const bad = Object.entries(errors);
    if (bad.length) {
      for (const [k, msg] of bad) {
        fields[k].querySelector('.field-error').textContent = msg;
        fields[k].querySelector('input, select').setAttribute('aria-invalid', 'true');
      }
      fields[bad[0][0]].querySelector('input, select').focus();
      return;
    }
    try {
      if (editing && Object.keys(body).length === 0) {
        host.replaceChildren(); // Nothing changed: nothing to send.
        return;
      }
      if (editing) await call('PATCH', `/api/v1/campaigns/${existing.id}`, body);
      else await call('POST', '/api/v1/campaigns', body);
      host.replaceChildren();
      toast(t('form.saved'), 'ok');
      loadCampaigns();
    } catch (err) {
      // The API names the field it refuses: say it there when it is on the form.
      const key = formField(err, inputs.trigger.value);
      const f = key && fields[key];
      if (f && !f.hidden) {
        f.querySelector('.field-error').textContent = err.text;
        const input = f.querySelector('input, select');
        input.setAttribute('aria-invalid', 'true');
        input.focus();
      } else {
        formError.textContent = err.text;
      }
    }
  };

  const form = h('form', { class: 'panel', novalidate: true, onsubmit: submit, 'data-testid': 'campaign-form' },
    h('h2', {}, t(editing ? 'form.edit_title' : 'form.create_title')),
    editing ? h('p', { class: 'muted small' }, t('form.edit_note')) : null,
    fields.name,
    h('div', { class: 'grid2' }, fields.type, fields.amount, fields.percent, fields.max_amount, fields.min_order_amount),
    h('div', { class: 'grid2' }, fields.total_quantity, fields.per_user_limit, fields.issue_starts_at, fields.issue_ends_at),
    h('div', { class: 'grid2' }, fields.issuance, fields.code, fields.trigger, fields.trigger_name),
    h('fieldset', {}, h('legend', {}, t('form.validity')),
      h('div', { class: 'radio' },
        h('label', {}, byDays, t('form.valid_days_mode')),
        h('label', {}, byUntil, t('form.valid_until_mode'))),
      h('div', { class: 'grid2' }, fields.valid_days, fields.valid_until)),
    formError,
    h('div', { class: 'row' },
      h('button', { type: 'submit', 'data-testid': 'save-campaign' }, t(editing ? 'form.save' : 'form.create')),
      h('button', { type: 'button', class: 'secondary', onclick: () => host.replaceChildren() }, t('form.cancel'))));
  host.replaceChildren(form);
  inputs.name.disabled ? inputs.total_quantity.focus() : inputs.name.focus();
}

/** The API's field names (`discount.amount`) as this form's. */
const API_FIELDS = {
  name: 'name',
  discount: 'type',
  'discount.type': 'type',
  'discount.amount': 'amount',
  'discount.percent': 'percent',
  'discount.max_amount': 'max_amount',
  min_order_amount: 'min_order_amount',
  total_quantity: 'total_quantity',
  per_user_limit: 'per_user_limit',
  issue_starts_at: 'issue_starts_at',
  issue_ends_at: 'issue_ends_at',
  valid_days: 'valid_days',
  valid_until: 'valid_until',
  valid_from: 'valid_until',
  issuance: 'issuance',
  code: 'code',
  trigger: 'trigger',
};

/** The form field an API error is about, if any. */
function formField(err, trigger) {
  if (err.code === 'code_taken') return 'code';
  if (err.code === 'quantity_below_issued') return 'total_quantity';
  const key = API_FIELDS[err.field];
  return key === 'trigger' && trigger === 'custom' ? 'trigger_name' : key;
}

/** An integer in `min..=max`, or an error message. */
function int(input, min, max, errors, key, optional = false) {
  const raw = input.value.trim();
  if (raw === '') {
    if (!optional) errors[key] = t('v.required');
    return undefined;
  }
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    errors[key] = t('v.range', { min: num(min), max: num(max) });
    return undefined;
  }
  return n;
}

function time(input, errors, key) {
  const iso = fromLocalInput(input.value);
  if (!iso) errors[key] = t('v.required');
  return iso;
}

function readCampaign(i, byDays) {
  const errors = {};
  const name = i.name.value.trim();
  if (name.length < 1 || [...name].length > 200) errors.name = t('v.name');
  const discount = i.type.value === 'percent'
    ? { type: 'percent', percent: int(i.percent, 1, 100, errors, 'percent') }
    : { type: 'fixed', amount: int(i.amount, 1, MAX_MONEY, errors, 'amount') };
  if (i.type.value === 'percent') {
    const max = int(i.max_amount, 1, MAX_MONEY, errors, 'max_amount', true);
    if (max !== undefined) discount.max_amount = max;
  }
  const body = {
    name,
    discount,
    min_order_amount: int(i.min_order_amount, 0, MAX_MONEY, errors, 'min_order_amount'),
    total_quantity: int(i.total_quantity, 1, MAX_TOTAL, errors, 'total_quantity'),
    per_user_limit: int(i.per_user_limit, 1, MAX_PER_USER, errors, 'per_user_limit'),
    issue_starts_at: time(i.issue_starts_at, errors, 'issue_starts_at'),
    issue_ends_at: time(i.issue_ends_at, errors, 'issue_ends_at'),
  };
  if (body.issue_starts_at && body.issue_ends_at && Date.parse(body.issue_ends_at) <= Date.parse(body.issue_starts_at)) {
    errors.issue_ends_at = t('v.ends_after_starts');
  }
  body.issuance = i.issuance.value;
  if (body.issuance === 'shared_code') {
    const code = i.code.value.trim();
    if (!code) errors.code = t('v.required');
    else if (!SHARED_CODE.test(code)) errors.code = t('v.code');
    body.code = code.toUpperCase();
  }
  if (body.issuance === 'claim' && i.trigger.value === 'custom') {
    const name = i.trigger_name.value.trim();
    if (!TRIGGER_NAME.test(name)) errors.trigger_name = name ? t('v.trigger_name') : t('v.required');
    body.trigger = `custom:${name}`;
  } else if (body.issuance === 'claim' && i.trigger.value) {
    body.trigger = i.trigger.value;
  }
  if (byDays) {
    body.valid_days = int(i.valid_days, 1, MAX_VALID_DAYS, errors, 'valid_days');
  } else {
    body.valid_until = time(i.valid_until, errors, 'valid_until');
    if (body.valid_until && body.issue_ends_at && Date.parse(body.valid_until) < Date.parse(body.issue_ends_at)) {
      errors.valid_until = t('v.until_after_ends');
    }
  }
  return { body, errors };
}

function readPatch(i, c) {
  const errors = {};
  const body = {};
  const total = int(i.total_quantity, 1, MAX_TOTAL, errors, 'total_quantity');
  if (total !== undefined && total < c.issued_count) errors.total_quantity = t('v.below_issued', { issued: c.issued_count });
  if (total !== undefined && total !== c.total_quantity) body.total_quantity = total;
  const ends = time(i.issue_ends_at, errors, 'issue_ends_at');
  if (ends && Date.parse(ends) <= Date.parse(c.issue_starts_at)) errors.issue_ends_at = t('v.ends_after_starts');
  if (ends && c.valid_until && Date.parse(ends) > Date.parse(c.valid_until)) errors.issue_ends_at = t('v.until_after_ends');
  // The input holds whole seconds: compare at that precision.
  if (ends && Math.floor(Date.parse(ends) / 1000) !== Math.floor(Date.parse(c.issue_ends_at) / 1000)) {
    body.issue_ends_at = ends;
  }
  return { body, errors };
}

// ---- the dashboard ----------------------------------------------------------------------------

async function openDashboard(id, atCodes = false) {
  let campaign;
  try {
    campaign = await call('GET', `/api/v1/campaigns/${id}`);
  } catch (err) {
    toast(err.text, 'error');
    location.hash = '#/';
    return;
  }
  // The admin may have moved on while the campaign loaded.
  if (![`#/campaign/${id}`, `#/campaign/${id}/codes`].includes(location.hash)) return;
  dash?.stop();
  const d = {
    id, campaign, stats: null, stopped: false, busy: false,
    // Winners shown, by seq; `dense` is the highest seq with none missing
    // below it: polls read on from there, since a lower seq can commit
    // after a higher one while the drop runs.
    shown: new Map(), dense: 0, max: 0, more: null,
    // The code job shown (unique-codes campaigns), and its poll.
    job: null, jobTimer: null,
    stop() {
      d.stopped = true;
      live.close();
      clearTimeout(d.timer);
      clearTimeout(d.jobTimer);
    },
  };
  const live = new EventSource(`/api/v1/campaigns/${id}/live`);
  live.addEventListener('stock', (e) => {
    if (dash !== d) return;
    try {
      Object.assign(d.campaign, JSON.parse(e.data));
    } catch {
      return;
    }
    renderStock();
  });
  dash = d;
  // One refresh at a time: the next starts a second after the last ended.
  const tick = async () => {
    await refreshDashboard(d);
    if (!d.stopped) d.timer = setTimeout(tick, 1000);
  };
  $('winners').replaceChildren();
  $('legend').replaceChildren(...OUTCOMES.map((o) => h('li', {}, h('span', { class: `swatch o-${o}` }), t(`outcome.${o}`))));
  renderStock();
  openCodes(d, atCodes);
  tick();
}

function renderStock() {
  const c = dash.campaign;
  $('dash-title').textContent = c.name;
  $('dash-status').textContent = t(`status.${c.status}`);
  $('dash-status').className = `badge status-${c.status}`;
  $('dash-pause').textContent = c.paused ? t('admin.resume') : t('admin.pause');
  $('kpi-issued').textContent = num(c.issued_count);
  $('kpi-remaining').textContent = num(c.remaining_quantity);
  $('kpi-total').textContent = num(c.total_quantity);
  $('dash-fill').style.width = `${(100 * c.issued_count) / Math.max(1, c.total_quantity)}%`;
  $('dash-bar').setAttribute('aria-valuemax', String(c.total_quantity));
  $('dash-bar').setAttribute('aria-valuenow', String(c.issued_count));
  $('dash-bar').setAttribute('aria-label', `${t('dash.issued')} ${c.issued_count} / ${c.total_quantity}`);
  const how = issuanceText(c);
  $('dash-issuance').hidden = !how;
  // "공유 코드: X" and "자동 지급: Y" say it; "고유 코드" alone needs its heading.
  $('dash-issuance').textContent = c.issuance === 'codes' && !c.trigger ? `${t('form.issuance')}: ${how}` : how;
}

// ---- unique codes ---------------------------------------------------------------------------

function openCodes(d, atCodes) {
  const codes = d.campaign.issuance === 'codes';
  $('codes-panel').hidden = !codes;
  $('codes-job').hidden = true;
  $('codes-form').reset();
  for (const id of ['codes-count', 'codes-pattern']) {
    $(`${id}-error`).textContent = '';
    $(id).removeAttribute('aria-invalid');
  }
  $('codes-error').textContent = '';
  $('codes-generate').disabled = false;
  if (!codes) return;
  if (atCodes) {
    $('codes-panel').scrollIntoView({ block: 'start' });
    $('codes-count').focus();
  }
  showLastJob(d);
}

/** The campaign's newest job from the record (any admin, any browser). */
async function showLastJob(d) {
  try {
    const { jobs } = await call('GET', `/api/v1/admin/campaigns/${d.id}/jobs`);
    if (dash === d && jobs.length > 0) pollJob(d, jobs[0].id);
  } catch (err) {
    if (dash === d && err.code !== 'network') toast(err.text, 'error');
  }
}

function renderCodes() {
  const job = dash?.job;
  $('codes-job').hidden = !job;
  $('codes-generate').disabled = job?.status === 'running';
  if (!job) return;
  $('codes-job').dataset.status = job.status;
  const progress = $('codes-progress');
  progress.max = Math.max(1, job.total);
  progress.value = job.done;
  progress.classList.toggle('failed', job.status === 'failed');
  const numbers = t('codes.numbers', { done: num(job.done), total: num(job.total) });
  progress.setAttribute('aria-valuetext', numbers);
  $('codes-numbers').textContent = numbers;
  const status = job.status === 'failed' ? t('codes.failed', { error: job.error ?? '' }) : t(`codes.${job.status}`);
  if ($('codes-status').textContent !== status) $('codes-status').textContent = status;
  $('codes-status').className = `result ${job.status === 'done' ? 'ok' : job.status === 'failed' ? 'bad' : ''}`;
}

/** Ask how far the job got, again every half second while it runs. */
async function pollJob(d, jobId) {
  clearTimeout(d.jobTimer);
  let wait = JOB_POLL_MS;
  try {
    const job = await call('GET', `/api/v1/admin/jobs/${jobId}`);
    if (dash !== d) return;
    d.job = job;
    renderCodes();
    if (job.status !== 'running') return;
  } catch (err) {
    if (dash !== d) return;
    if (err.code === 'not_found') return;
    // A blip (network, 503): keep asking, a little slower.
    if (err.code !== 'network' && err.status < 500) {
      toast(err.text, 'error');
      return;
    }
    wait = 2000;
  }
  d.jobTimer = setTimeout(() => pollJob(d, jobId), wait);
}

async function startCodes(e) {
  e.preventDefault();
  const d = dash;
  if (!d || d.job?.status === 'running') return;
  const fieldsById = { count: 'codes-count', pattern: 'codes-pattern' };
  for (const id of Object.values(fieldsById)) {
    $(`${id}-error`).textContent = '';
    $(id).removeAttribute('aria-invalid');
  }
  $('codes-error').textContent = '';
  const errors = {};
  const count = int($('codes-count'), 1, Math.min(MAX_JOB_CODES, d.campaign.total_quantity), errors, 'count');
  const pattern = $('codes-pattern').value.trim().toUpperCase();
  if (pattern && (!PATTERN.test(pattern) || [...pattern].filter((ch) => ch === '#').length < MIN_PATTERN_RANDOM)) {
    errors.pattern = t('v.pattern');
  }
  const show = (key, text) => {
    $(`${fieldsById[key]}-error`).textContent = text;
    $(fieldsById[key]).setAttribute('aria-invalid', 'true');
  };
  const bad = Object.entries(errors);
  if (bad.length) {
    for (const [k, msg] of bad) show(k, msg);
    $(fieldsById[bad[0][0]]).focus();
    return;
  }
  const body = pattern ? { count, pattern } : { count };
  $('codes-generate').disabled = true;
  try {
    const { job } = await call('POST', `/api/v1/campaigns/${d.id}/codes`, body);
    if (dash !== d) return;
    toast(t('codes.started'), 'ok');
    d.job = job;
    renderCodes();
    pollJob(d, job.id);
  } catch (err) {
    if (dash !== d) return;
    $('codes-generate').disabled = false;
    if (fieldsById[err.field]) show(err.field, err.text);
    else $('codes-error').textContent = err.text;
  }
}

async function refreshDashboard(d) {
  if (dash !== d || d.busy) return;
  d.busy = true;
  try {
    const s = await call('GET', `/api/v1/admin/campaigns/${d.id}/stats?seconds=${CHART_SECONDS}`);
    if (dash !== d) return;
    Object.assign(d.campaign, s.campaign);
    d.stats = s.claims;
    $('kpi-reserved').textContent = num(s.checkout.reserved);
    $('kpi-used').textContent = num(s.checkout.used);
    // Unknown or used codes tried, and tries refused for guessing: a sudden
    // rise is somebody enumerating codes.
    $('kpi-guesses').textContent = `${num(s.code_guesses.failed)} / ${num(s.code_guesses.refused)}`;
    renderStock();
    renderStats();
    await loadWinners(d, d.dense);
  } catch (err) {
    if (err.code !== 'network' && dash === d) toast(err.text, 'error');
  } finally {
    d.busy = false;
  }
}

function ms(v) {
  return v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(v >= 10 ? 1 : 2)} ms`;
}

function renderStats() {
  const s = dash.stats;
  $('outcomes').replaceChildren(...OUTCOMES.map((o) => h('tr', { 'data-outcome': o },
    h('th', { scope: 'row' }, h('span', { class: `swatch o-${o}` }), t(`outcome.${o}`)),
    h('td', { class: 'num' }, num(s.totals[o])))));
  const l = s.latency;
  $('kpi-p50').textContent = l.count ? ms(l.p50_ms) : '–';
  $('kpi-p99').textContent = l.count ? ms(l.p99_ms) : '–';
  $('kpi-max').textContent = l.count ? ms(l.max_ms) : '–';
  $('kpi-count').textContent = num(l.count);
  drawChart(s.per_second);
}

/** Stacked bars, one per second, oldest on the left. */
function drawChart(series) {
  const n = series.issued.length;
  const totals = Array.from({ length: n }, (_, i) => OUTCOMES.reduce((sum, o) => sum + series[o][i], 0));
  const top = Math.max(1, ...totals);
  const width = 600;
  const height = 180;
  const barW = width / n;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  const recent = totals.slice(-10);
  svg.setAttribute('aria-label', t('dash.chart_label', { avg: num(Math.round(recent.reduce((a, b) => a + b, 0) / recent.length)), max: num(top) }));
  for (let i = 0; i < n; i++) {
    let y = height;
    for (const o of OUTCOMES) {
      const v = series[o][i];
      if (!v) continue;
      const bh = (v / top) * height;
      y -= bh;
      const r = document.createElementNS(SVG, 'rect');
      r.setAttribute('x', String(i * barW));
      r.setAttribute('y', String(y));
      r.setAttribute('width', String(Math.max(barW - 0.3, 0.5)));
      r.setAttribute('height', String(bh));
      r.setAttribute('class', `o-${o}`);
      svg.append(r);
    }
  }
  const axis = document.createElementNS(SVG, 'line');
  for (const [k, v] of Object.entries({ x1: 0, x2: width, y1: height, y2: height, stroke: '#8c959f' })) axis.setAttribute(k, String(v));
  svg.append(axis);
  // Axis labels in HTML: the SVG stretches to the box, text would stretch with it.
  $('chart').replaceChildren(
    h('div', { class: 'muted small' }, `${num(top)}/s`),
    svg,
    h('div', { class: 'row spread muted small' },
      h('span', {}, t('time.minutes_ago', { n: Math.round(n / 60) })), h('span', {}, t('time.now'))));
}

function winnerRow(w) {
  return h('tr', { 'data-seq': w.seq },
    h('td', { class: 'num' }, w.seq), h('td', {}, w.email), h('td', {}, dateTime(w.issued_at)),
    h('td', {}, h('span', { class: `badge coupon-${w.status}` }, t(`coupon.${w.status}`))));
}

/** Add the winners after `after` that are not shown yet, each in its seq place. */
async function loadWinners(d, after) {
  const page = await call('GET', `/api/v1/admin/campaigns/${d.id}/winners?limit=100&after=${after}`);
  if (dash !== d) return;
  const body = $('winners');
  body.querySelector('tr.empty')?.remove();
  for (const w of page.winners) {
    if (d.shown.has(w.seq)) continue;
    d.shown.set(w.seq, w);
    const row = winnerRow(w);
    // Usually the newest: appended. A late lower seq goes into its place.
    const later = w.seq > d.max ? null : [...body.querySelectorAll('tr[data-seq]')].find((r) => Number(r.dataset.seq) > w.seq);
    body.insertBefore(row, later ?? null);
    d.max = Math.max(d.max, w.seq);
  }
  while (d.shown.has(d.dense + 1)) d.dense++;
  if (d.shown.size === 0) {
    body.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: 4, class: 'muted' }, t('dash.no_winners'))));
  }
  // A full page may have more behind it: "more" reads on from the highest shown.
  d.more = page.next !== undefined ? d.max : null;
  $('more').hidden = d.more === null;
}

/**
 * An admin export, saved as a file. A link cannot send the Authorization
 * header, so: fetch it, then save the Blob through an object URL (a
 * download, which the page's CSP does not govern).
 */
async function downloadCsv(path, filename, button) {
  let blob;
  button.disabled = true;
  try {
    const response = await fetch(path, {
      headers: { authorization: `Bearer ${session.token}` },
    });
    if (!response.ok) {
      const e = (await response.json().catch(() => null))?.error;
      throw new ApiError(response.status, e?.code ?? 'network', e?.message ?? response.statusText);
    }
    blob = await response.blob();
  } catch (err) {
    const e = err instanceof ApiError ? err : new ApiError(0, 'network', String(err));
    if (e.code === 'unauthorized' || e.code === 'forbidden') logout();
    toast(e.text, 'error');
    return;
  } finally {
    button.disabled = false;
  }
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// ---- time sales (타임세일) ------------------------------------------------------------------------

/** A sale's own limit (domain/sale.rs); the others are the campaign form's. */
const MAX_PAYMENT_TTL = 86_400;
/** How often the list and a sale's page read the sales (and its summary) again. */
const SALES_POLL_MS = 3000;
const ORDER_STATUSES = ['pending_payment', 'paid', 'expired', 'cancelled', 'refunded'];

let salesList = [];
/** What the list shows, so a poll that changes nothing redraws nothing. */
let salesShown = '';
/** The list's poll: its generation (a new visit ends the old poll) and timer. */
let salesWatch = 0;
let salesTimer = null;
/** The open sale page: {id, sale, summary, missing, filled, saving, chart, stop()}. */
let saleDash = null;

function openSales() {
  const gen = ++salesWatch;
  const tick = async () => {
    await loadSales();
    if (gen === salesWatch && location.hash === '#/sales') salesTimer = setTimeout(tick, SALES_POLL_MS);
  };
  clearTimeout(salesTimer);
  salesShown = '';
  tick();
}

async function loadSales() {
  try {
    salesList = (await call('GET', '/api/v1/sales')).sales;
  } catch (err) {
    if (err.code !== 'network') toast(err.text, 'error');
    return;
  }
  renderSales();
}

function renderSales(force = false) {
  const shown = JSON.stringify(salesList);
  if (!force && shown === salesShown) return;
  salesShown = shown;
  // A redraw keeps the focus on the same button of the same row.
  const active = document.activeElement;
  const row = active?.closest?.('tr[data-sale]');
  const focus = row ? [row.dataset.sale, active.dataset.testid] : null;
  const rows = salesList.map((s) => h('tr', { 'data-sale': s.id, 'data-testid': 'sale-row' },
    h('td', {}, h('a', { href: `#/sale/${s.id}` }, s.name),
      h('div', { class: 'muted small' }, `${s.product.name} · ${s.product.sku}`)),
    h('td', {}, h('span', { class: `badge status-${s.status}`, 'data-testid': 'sale-row-status' }, t(`status.${s.status}`))),
    h('td', { class: 'num' }, won(s.sale_price), h('div', { class: 'muted small' }, won(s.product.list_price))),
    h('td', { class: 'num', 'data-testid': 'sale-row-sold' }, `${num(s.sold_count)} / ${num(s.total_quantity)}`),
    h('td', { class: 'num', 'data-testid': 'sale-row-remaining' }, num(s.remaining_quantity)),
    h('td', { class: 'small' }, `${dateTime(s.starts_at)} – ${dateTime(s.ends_at)}`),
    h('td', {},
      h('div', { class: 'row' },
        h('a', { href: `#/sale/${s.id}`, 'data-testid': 'open-sale' }, t('sales.summary')),
        h('button', { type: 'button', class: 'secondary', 'data-testid': 'sale-row-pause', onclick: () => toggleSalePause(s) },
          s.paused ? t('admin.resume') : t('admin.pause'))))));
  $('sale-rows').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 7, class: 'muted' }, t('sales.admin_empty')))]));
  if (focus) $('sale-rows').querySelector(`tr[data-sale="${focus[0]}"] [data-testid="${focus[1]}"]`)?.focus();
}

async function toggleSalePause(s) {
  try {
    await call('PATCH', `/api/v1/sales/${s.id}`, { paused: !s.paused });
  } catch (err) {
    toast(err.text, 'error');
  }
  if (saleDash) refreshSale(saleDash);
  else loadSales();
}

/** The API's field names (`product.sku`) as the sale form's. */
const SALE_API_FIELDS = {
  name: 'name',
  product: 'sku',
  'product.sku': 'sku',
  'product.name': 'product_name',
  'product.list_price': 'list_price',
  sale_price: 'sale_price',
  total_quantity: 'total_quantity',
  per_user_limit: 'per_user_limit',
  starts_at: 'starts_at',
  ends_at: 'ends_at',
  payment_ttl_secs: 'payment_ttl_secs',
};

function showSaleForm() {
  const host = $('sale-form-host');
  const start = new Date(Date.now() + 5 * 60_000);
  start.setSeconds(0, 0);
  const inputs = {
    name: h('input', { type: 'text', maxlength: 200, required: true }),
    sku: h('input', { type: 'text', maxlength: 64, required: true, autocomplete: 'off', spellcheck: 'false' }),
    product_name: h('input', { type: 'text', maxlength: 200, required: true }),
    list_price: numberInput({ min: 1 }),
    sale_price: numberInput({ min: 0 }),
    total_quantity: numberInput({ min: 1, value: 100 }),
    per_user_limit: numberInput({ min: 1, max: MAX_PER_USER, value: 1 }),
    payment_ttl_secs: numberInput({ min: 1, max: MAX_PAYMENT_TTL, placeholder: '600' }),
    starts_at: h('input', { type: 'datetime-local', step: 1, value: toLocalInput(start.toISOString()) }),
    ends_at: h('input', { type: 'datetime-local', step: 1, value: toLocalInput(new Date(start.getTime() + 3_600_000).toISOString()) }),
  };
  const fields = {
    name: field('s-name', 'sform.name', inputs.name),
    sku: field('s-sku', 'sform.sku', inputs.sku),
    product_name: field('s-product', 'sform.product_name', inputs.product_name),
    list_price: field('s-list-price', 'sform.list_price', inputs.list_price),
    sale_price: field('s-sale-price', 'sform.sale_price', inputs.sale_price),
    total_quantity: field('s-total', 'sform.total', inputs.total_quantity),
    per_user_limit: field('s-per-user', 'sform.per_user', inputs.per_user_limit),
    payment_ttl_secs: field('s-ttl', 'sform.ttl', inputs.payment_ttl_secs),
    starts_at: field('s-starts', 'sform.starts', inputs.starts_at),
    ends_at: field('s-ends', 'sform.ends', inputs.ends_at),
  };
  const formError = h('p', { class: 'error', role: 'alert', 'data-testid': 'sale-form-error' });
  const save = h('button', { type: 'submit', 'data-testid': 'save-sale' }, t('form.create'));
  const showError = (key, text) => {
    fields[key].querySelector('.field-error').textContent = text;
    inputs[key].setAttribute('aria-invalid', 'true');
  };

  const submit = async (e) => {
    e.preventDefault();
    if (save.disabled) return;
    for (const [k, f] of Object.entries(fields)) {
      f.querySelector('.field-error').textContent = '';
      inputs[k].removeAttribute('aria-invalid');
    }
    formError.textContent = '';
    const { body, errors } = readSale(inputs);
    const bad = Object.entries(errors);
    if (bad.length) {
      for (const [k, msg] of bad) showError(k, msg);
      inputs[bad[0][0]].focus();
      return;
    }
    // A create is not repeatable: one at a time.
    save.disabled = true;
    try {
      await call('POST', '/api/v1/sales', body);
      host.replaceChildren();
      toast(t('form.saved'), 'ok');
      loadSales();
    } catch (err) {
      // The API names the field it refuses: say it there.
      const key = SALE_API_FIELDS[err.field];
      if (key) {
        showError(key, err.text);
        inputs[key].focus();
      } else {
        formError.textContent = err.text;
      }
    } finally {
      save.disabled = false;
    }
  };

  host.replaceChildren(h('form', { class: 'panel', method: 'post', action: '/admin', novalidate: true, onsubmit: submit, 'data-testid': 'sale-form' },
    h('h2', {}, t('sform.create_title')),
    fields.name,
    h('fieldset', {}, h('legend', {}, t('sform.product')),
      h('div', { class: 'grid2' }, fields.sku, fields.product_name, fields.list_price)),
    h('div', { class: 'grid2' }, fields.sale_price, fields.total_quantity, fields.per_user_limit, fields.payment_ttl_secs),
    h('div', { class: 'grid2' }, fields.starts_at, fields.ends_at),
    formError,
    h('div', { class: 'row' },
      save,
      h('button', { type: 'button', class: 'secondary', onclick: () => host.replaceChildren() }, t('form.cancel')))));
  inputs.name.focus();
}

/** Text of 1..`max` characters, trimmed, or an error. */
function textField(input, max, errors, key, message) {
  const v = input.value.trim();
  if (!v || [...v].length > max) errors[key] = v ? t(message) : t('v.required');
  return v;
}

function readSale(i) {
  const errors = {};
  const name = textField(i.name, 200, errors, 'name', 'v.name');
  const sku = textField(i.sku, 64, errors, 'sku', 'v.sku');
  const productName = textField(i.product_name, 200, errors, 'product_name', 'v.name');
  const listPrice = int(i.list_price, 1, MAX_MONEY, errors, 'list_price');
  const salePrice = int(i.sale_price, 0, MAX_MONEY, errors, 'sale_price');
  if (listPrice !== undefined && salePrice !== undefined && salePrice > listPrice) {
    errors.sale_price = t('v.sale_price', { list: won(listPrice) });
  }
  const body = {
    name,
    product: { sku, name: productName, list_price: listPrice },
    sale_price: salePrice,
    total_quantity: int(i.total_quantity, 1, MAX_TOTAL, errors, 'total_quantity'),
    per_user_limit: int(i.per_user_limit, 1, MAX_PER_USER, errors, 'per_user_limit'),
    starts_at: time(i.starts_at, errors, 'starts_at'),
    ends_at: time(i.ends_at, errors, 'ends_at'),
  };
  if (body.starts_at && body.ends_at && Date.parse(body.ends_at) <= Date.parse(body.starts_at)) {
    errors.ends_at = t('v.sale_ends_after_starts');
  }
  const ttl = int(i.payment_ttl_secs, 1, MAX_PAYMENT_TTL, errors, 'payment_ttl_secs', true);
  if (ttl !== undefined) body.payment_ttl_secs = ttl;
  return { body, errors };
}

// ---- a sale's page: its stock, its orders by status, pause, stock and end ---------------------------

function openSale(id) {
  const d = {
    id, sale: null, summary: null, missing: false, filled: false, saving: false, stopped: false, timer: null,
    chart: ORDER_STATUSES.map((status) => {
      const bar = {
        status,
        label: h('span', { class: 'label' }),
        fill: h('span', { class: `fill s-${status}` }),
        n: h('span', { class: 'n', 'data-testid': 'sale-chart-count' }),
      };
      bar.item = h('li', { 'data-status': status, 'data-testid': 'sale-chart-row' },
        bar.label, h('span', { class: 'track', 'aria-hidden': 'true' }, bar.fill), bar.n);
      return bar;
    }),
    stop() {
      d.stopped = true;
      clearTimeout(d.timer);
    },
  };
  saleDash = d;
  for (const id of ['sale-title', 'sale-status', 'sale-pause', 'sale-product', 'sale-window', 'sale-edit-result', 'sale-edit-error']) $(id).textContent = '';
  for (const k of ['ordered', 'remaining', 'sold', 'revenue', 'discount', 'points', 'sold-out']) $(`skpi-${k}`).textContent = '–';
  $('sale-edit').reset();
  clearSaleEdit();
  $('sale-summary-note').hidden = true;
  $('sale-chart').replaceChildren(...d.chart.map((b) => b.item));
  const tick = async () => {
    await refreshSale(d);
    if (!d.stopped) d.timer = setTimeout(tick, SALES_POLL_MS);
  };
  tick();
}

/** The sale, then its summary; a summary the server cannot give yet leaves the stock shown. */
async function refreshSale(d) {
  let sale;
  try {
    sale = await call('GET', `/api/v1/sales/${d.id}`);
  } catch (err) {
    if (saleDash !== d) return;
    if (err.code === 'not_found') {
      toast(err.text, 'error');
      location.hash = '#/sales';
    } else if (err.code !== 'network') {
      toast(err.text, 'error');
    }
    return;
  }
  if (saleDash !== d) return;
  d.sale = sale;
  if (!d.filled) fillSaleEdit(d);
  try {
    d.summary = await call('GET', `/api/v1/admin/sales/${d.id}/summary`);
    d.missing = false;
  } catch {
    if (saleDash !== d) return;
    d.missing = true;
  }
  if (saleDash === d) renderSale();
}

function renderSale() {
  const d = saleDash;
  const s = d?.sale;
  if (!s) return;
  $('sale-title').textContent = s.name;
  $('sale-status').textContent = t(`status.${s.status}`);
  $('sale-status').className = `badge status-${s.status}`;
  $('sale-pause').textContent = s.paused ? t('admin.resume') : t('admin.pause');
  $('sale-product').textContent = t('sdash.product', {
    product: s.product.name, sku: s.product.sku, list: won(s.product.list_price), price: won(s.sale_price),
  });
  $('sale-window').textContent = t('sdash.window', {
    from: dateTime(s.starts_at), until: dateTime(s.ends_at), limit: num(s.per_user_limit), ttl: num(s.payment_ttl_secs),
  });
  $('skpi-ordered').textContent = `${num(s.sold_count)} / ${num(s.total_quantity)}`;
  $('skpi-remaining').textContent = num(s.remaining_quantity);
  $('sale-fill').style.width = `${(100 * s.sold_count) / Math.max(1, s.total_quantity)}%`;
  $('sale-bar').setAttribute('aria-valuemax', String(s.total_quantity));
  $('sale-bar').setAttribute('aria-valuenow', String(s.sold_count));
  $('sale-bar').setAttribute('aria-label', `${t('sdash.ordered')} ${s.sold_count} / ${s.total_quantity}`);

  const m = d.summary;
  $('sale-summary-note').hidden = !d.missing;
  $('sale-summary-note').textContent = d.missing ? t('sdash.no_summary') : '';
  $('skpi-sold').textContent = m ? num(m.units_sold) : '–';
  $('skpi-revenue').textContent = m ? won(m.revenue) : '–';
  $('skpi-discount').textContent = m ? won(m.discount_total) : '–';
  $('skpi-points').textContent = m ? points(m.points_total) : '–';
  $('skpi-sold-out').textContent = !m ? '–' : m.sold_out_at ? dateTime(m.sold_out_at) : t('sdash.not_sold_out');
  const counts = Object.fromEntries(ORDER_STATUSES.map((st) => [st, m?.orders?.[st] ?? 0]));
  const top = Math.max(1, ...Object.values(counts));
  for (const b of d.chart) {
    b.label.textContent = t(`order.${b.status}`);
    b.n.textContent = m ? num(counts[b.status]) : '–';
    b.fill.style.width = `${(100 * counts[b.status]) / top}%`;
  }
  $('sale-chart').setAttribute('aria-label', t('sdash.chart_label', {
    counts: ORDER_STATUSES.map((st) => `${t(`order.${st}`)} ${num(counts[st])}`).join(', '),
  }));
}

function fillSaleEdit(d) {
  $('sale-edit-total').value = String(d.sale.total_quantity);
  $('sale-edit-ends').value = toLocalInput(d.sale.ends_at);
  d.filled = true;
}

/** The edit form's inputs, by the API's field names. */
const SALE_EDIT_FIELDS = { total_quantity: 'sale-edit-total', ends_at: 'sale-edit-ends' };

function clearSaleEdit() {
  for (const id of Object.values(SALE_EDIT_FIELDS)) {
    $(`${id}-error`).textContent = '';
    $(id).removeAttribute('aria-invalid');
  }
  $('sale-edit-error').textContent = '';
}

function showSaleEditError(key, message) {
  const id = SALE_EDIT_FIELDS[key];
  $(`${id}-error`).textContent = message;
  $(id).setAttribute('aria-invalid', 'true');
  $(id).focus();
}

/** Change the stock or the end. The stock is checked by the server only:
 * orders move it while the page is open, so only the server knows how far
 * it can go down now. */
async function editSale(e) {
  e.preventDefault();
  const d = saleDash;
  if (!d?.sale || d.saving) return;
  clearSaleEdit();
  $('sale-edit-result').textContent = '';
  $('sale-edit-result').className = 'result';
  const errors = {};
  const total = int($('sale-edit-total'), 1, MAX_TOTAL, errors, 'total_quantity');
  const ends = time($('sale-edit-ends'), errors, 'ends_at');
  if (ends && Date.parse(ends) <= Date.parse(d.sale.starts_at)) errors.ends_at = t('v.sale_ends_after_starts');
  const bad = Object.entries(errors);
  if (bad.length) {
    for (const [k, msg] of bad.reverse()) showSaleEditError(k, msg);
    return;
  }
  const body = {};
  if (total !== d.sale.total_quantity) body.total_quantity = total;
  // The input holds whole seconds: compare at that precision.
  if (Math.floor(Date.parse(ends) / 1000) !== Math.floor(Date.parse(d.sale.ends_at) / 1000)) body.ends_at = ends;
  if (Object.keys(body).length === 0) {
    $('sale-edit-result').textContent = t('sdash.nothing');
    return;
  }
  d.saving = true;
  $('sale-edit-save').disabled = true;
  try {
    d.sale = await call('PATCH', `/api/v1/sales/${d.id}`, body);
    if (saleDash !== d) return;
    fillSaleEdit(d);
    renderSale();
    $('sale-edit-result').textContent = t('sdash.updated');
    $('sale-edit-result').className = 'result ok';
  } catch (err) {
    if (saleDash !== d) return;
    if (err.code === 'quantity_below_issued') {
      // Read how many are ordered now, and say how far it can go down.
      await refreshSale(d);
      showSaleEditError('total_quantity', t('v.below_sold', { sold: num(d.sale.sold_count) }));
    } else if (SALE_EDIT_FIELDS[err.field]) {
      showSaleEditError(err.field, err.text);
    } else {
      $('sale-edit-error').textContent = err.text;
    }
  } finally {
    d.saving = false;
    $('sale-edit-save').disabled = false;
  }
}

// ---- service keys --------------------------------------------------------------------------------

let serviceKeys = [];

async function loadKeys() {
  $('key-once').hidden = true;
  try {
    serviceKeys = (await call('GET', '/api/v1/admin/api-keys')).api_keys;
  } catch (err) {
    toast(err.text, 'error');
    return;
  }
  renderKeys();
}

function renderKeys() {
  const rows = serviceKeys.map((k) => h('tr', { 'data-key': k.id },
    h('td', {}, k.name),
    h('td', { class: 'small' }, dateTime(k.created_at)),
    h('td', { class: 'small' }, k.last_used_at ? dateTime(k.last_used_at) : t('keys.never')),
    h('td', {}, h('button', { type: 'button', class: 'secondary', 'data-testid': 'key-delete', onclick: () => deleteKey(k) }, t('keys.delete')))));
  $('key-rows').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 4, class: 'muted' }, t('keys.empty')))]));
}

async function createKey(e) {
  e.preventDefault();
  $('key-error').textContent = '';
  const name = $('key-name').value.trim();
  if (!name || name.length > 100) {
    $('key-error').textContent = t('keys.bad_name');
    return;
  }
  try {
    const created = await call('POST', '/api/v1/admin/api-keys', { name });
    $('key-value').textContent = created.key;
    $('key-name').value = '';
    serviceKeys = (await call('GET', '/api/v1/admin/api-keys')).api_keys;
    renderKeys();
    $('key-once').hidden = false;
  } catch (err) {
    $('key-error').textContent = err.text;
  }
}

async function deleteKey(k) {
  if (!window.confirm(t('keys.confirm_delete'))) return;
  try {
    await call('DELETE', `/api/v1/admin/api-keys/${k.id}`);
    toast(t('keys.deleted'));
  } catch (err) {
    toast(err.text, 'error');
  }
  loadKeys();
}

// ---- points (적립금) --------------------------------------------------------------------------------

/** The member shown: {user, view, entries, next, gen} (`gen` counts loads, so
 * an answer to a replaced one is dropped); null before a look-up. */
let member = null;
/** The adjustment being made: its fields, the reference sent with them, and
 * whether it is in flight. Sending the same fields again after no answer
 * reuses the reference, so the server applies it once; a new reference
 * only for new fields or after an answer. */
let adjusting = null;

function openPoints() {
  renderAdjust();
  if (member) loadMember(member);
  else $('points-email').focus();
}

async function lookupMember(e) {
  e.preventDefault();
  const input = $('points-email');
  const error = $('points-lookup-error');
  const email = input.value.trim();
  error.textContent = '';
  input.removeAttribute('aria-invalid');
  const fail = (text) => {
    // Not the member asked for: show nobody's points rather than the last one's.
    member = null;
    renderMember();
    error.textContent = text;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  };
  if (!email) {
    fail(t('v.required'));
    return;
  }
  let user;
  $('points-find').disabled = true;
  try {
    user = await call('GET', `/api/v1/admin/users/lookup?email=${encodeURIComponent(email)}`);
  } catch (err) {
    fail(err.code === 'not_found' ? t('points.no_user', { email }) : err.text);
    return;
  } finally {
    $('points-find').disabled = false;
  }
  member = { user, view: null, entries: [], next: null, gen: 0 };
  adjusting = null;
  $('adjust-form').reset();
  clearAdjustMessages();
  $('adjust-result').textContent = '';
  renderAdjust();
  await loadMember(member);
}

/** The balance and the first page of history, afresh (as many rows as shown). */
async function loadMember(m) {
  const gen = ++m.gen;
  const limit = Math.min(100, Math.max(POINTS_PAGE, m.entries.length));
  let view;
  let page;
  try {
    [view, page] = await Promise.all([
      call('GET', `/api/v1/users/${m.user.id}/points`),
      call('GET', `/api/v1/users/${m.user.id}/points/history?limit=${limit}`),
    ]);
  } catch (err) {
    if (member === m) toast(err.text, 'error');
    return;
  }
  if (member !== m || gen !== m.gen) return;
  Object.assign(m, { view, entries: page.entries, next: page.next ?? null });
  renderMember();
}

async function moreMemberHistory() {
  const m = member;
  if (!m || m.next === null) return;
  const gen = m.gen;
  $('points-more').disabled = true;
  try {
    const page = await call('GET', `/api/v1/users/${m.user.id}/points/history?limit=${POINTS_PAGE}&before=${encodeURIComponent(m.next)}`);
    if (member !== m || gen !== m.gen) return;
    m.entries.push(...page.entries);
    m.next = page.next ?? null;
    renderMember();
  } catch (err) {
    toast(err.text, 'error');
  } finally {
    $('points-more').disabled = false;
  }
}

function renderMember() {
  const m = member;
  $('points-member').hidden = !m?.view;
  if (!m?.view) return;
  $('points-who').textContent = m.user.email;
  $('points-uid').textContent = t('points.user_id', { id: m.user.id });
  $('points-balance').textContent = points(m.view.balance);
  $('points-held').textContent = points(m.view.held);
  const expiries = expiryItems(m.view.expiring, EXPIRIES_SHOWN);
  $('points-expiring').replaceChildren(...(expiries.length ? expiries : [h('li', { class: 'muted' }, t('points.none_expiring'))]));
  const rows = m.entries.map((e) => h('tr', { 'data-entry': e.id, 'data-kind': e.kind, 'data-testid': 'points-row' },
    h('td', { class: 'small' }, dateTime(e.created_at)),
    h('td', {}, h('span', { class: 'badge' }, pointsKind(e.kind))),
    h('td', { class: `num amount ${e.amount > 0 ? 'plus' : 'minus'}` }, signedPoints(e.amount)),
    h('td', { class: 'num' }, points(e.balance_after)),
    h('td', { class: 'note small' }, entryNote(e))));
  $('points-rows').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 5, class: 'muted' }, t('points.empty')))]));
  $('points-more').hidden = m.next === null;
}

function renderAdjust() {
  const busy = Boolean(adjusting?.busy);
  const button = $('adjust-submit');
  button.textContent = busy ? t('points.applying') : t('points.apply');
  button.disabled = busy;
  button.setAttribute('aria-busy', busy ? 'true' : 'false');
}

/** The adjust form's inputs, by the API's field names. */
const ADJUST_FIELDS = { amount: 'adjust-amount', reason: 'adjust-reason', valid_days: 'adjust-valid-days' };

function clearAdjustMessages() {
  for (const id of Object.values(ADJUST_FIELDS)) {
    $(`${id}-error`).textContent = '';
    $(id).removeAttribute('aria-invalid');
  }
  $('adjust-error').textContent = '';
}

function showAdjustError(field, text) {
  $(`${ADJUST_FIELDS[field]}-error`).textContent = text;
  $(ADJUST_FIELDS[field]).setAttribute('aria-invalid', 'true');
}

async function adjustPoints(e) {
  e.preventDefault();
  const m = member;
  if (!m || adjusting?.busy) return;
  clearAdjustMessages();
  $('adjust-result').textContent = '';
  $('adjust-result').className = 'result';
  const errors = {};
  const raw = $('adjust-amount').value.trim();
  const amount = Number(raw);
  if (raw === '') errors.amount = t('v.required');
  else if (!Number.isInteger(amount) || amount === 0 || Math.abs(amount) > MAX_POINTS) {
    errors.amount = t('v.points_amount', { min: num(-MAX_POINTS), max: num(MAX_POINTS) });
  }
  const reason = $('adjust-reason').value.trim();
  if (!reason) errors.reason = t('v.required');
  else if ([...reason].length > 500) errors.reason = t('v.reason');
  // Days apply to points added; taken points keep their lots' expiry.
  const validDays = amount > 0 ? int($('adjust-valid-days'), 1, MAX_VALID_DAYS, errors, 'valid_days', true) : undefined;
  const bad = Object.entries(errors);
  if (bad.length) {
    for (const [k, msg] of bad) showAdjustError(k, msg);
    $(ADJUST_FIELDS[bad[0][0]]).focus();
    return;
  }
  const body = validDays === undefined ? { amount, reason } : { amount, reason, valid_days: validDays };
  const fields = JSON.stringify([m.user.id, body]);
  if (adjusting?.fields !== fields) adjusting = { fields, reference: `adj-${Date.now()}-${newId().slice(0, 8)}`, busy: false };
  const attempt = adjusting;
  attempt.busy = true;
  renderAdjust();
  try {
    let entry;
    // One retry after no answer, with the same reference: applied once either way.
    for (let round = 0; ; round++) {
      try {
        entry = await call('POST', `/api/v1/admin/users/${m.user.id}/points/adjust`, { ...body, reference: attempt.reference });
        break;
      } catch (err) {
        if (err.code !== 'network' || round >= 1) throw err;
      }
    }
    if (adjusting === attempt) adjusting = null;
    if (member !== m) return;
    $('adjust-form').reset();
    $('adjust-result').textContent = t('points.adjusted', { amount: signedPoints(entry.amount), balance: points(entry.balance_after) });
    $('adjust-result').className = 'result ok';
    await loadMember(m);
  } catch (err) {
    // Refused, not lost: the same fields again are a new adjustment.
    if (err.code !== 'network' && err.status < 500 && adjusting === attempt) adjusting = null;
    if (member !== m) return;
    if (err.code === 'insufficient_points') {
      await loadMember(m);
      $('adjust-error').textContent = t('points.insufficient', { balance: points(m.view.balance) });
      $('adjust-amount').focus();
    } else if (ADJUST_FIELDS[err.field]) {
      showAdjustError(err.field, err.text);
      $(ADJUST_FIELDS[err.field]).focus();
    } else {
      $('adjust-error').textContent = err.text;
    }
  } finally {
    attempt.busy = false;
    renderAdjust();
  }
}

// ---- start ------------------------------------------------------------------------------------

function start() {
  setupLangToggle($('lang'));
  onLangChange(() => {
    if (dash) {
      renderStock();
      renderCodes();
      if (dash.stats) renderStats();
      if (dash.shown.size) $('winners').replaceChildren(...[...dash.shown.values()].sort((a, b) => a.seq - b.seq).map(winnerRow));
      $('legend').replaceChildren(...OUTCOMES.map((o) => h('li', {}, h('span', { class: `swatch o-${o}` }), t(`outcome.${o}`))));
    } else if (session.signedIn && location.hash === '#/keys') {
      renderKeys();
    } else if (session.signedIn && location.hash === '#/points') {
      renderMember();
      renderAdjust();
    } else if (saleDash) {
      renderSale();
    } else if (session.signedIn && location.hash === '#/sales') {
      renderSales(true);
      $('sale-form-host').replaceChildren();
    } else if (session.signedIn) {
      renderCampaigns();
      $('form-host').replaceChildren();
    }
  });
  applyLabels();
  renderAdjust();
  $('auth-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('new').addEventListener('click', () => showForm(null));
  $('refresh').addEventListener('click', loadCampaigns);
  $('dash-pause').addEventListener('click', () => dash && togglePause(dash.campaign));
  $('more').addEventListener('click', () => dash?.more != null && loadWinners(dash, dash.more).catch((err) => toast(err.text, 'error')));
  $('csv').addEventListener('click', () => dash && downloadCsv(`/api/v1/admin/campaigns/${dash.id}/winners.csv`, `winners-${dash.id}.csv`, $('csv')));
  $('codes-csv').addEventListener('click', () => dash && downloadCsv(`/api/v1/admin/campaigns/${dash.id}/codes.csv`, `codes-${dash.id}.csv`, $('codes-csv')));
  $('codes-form').addEventListener('submit', startCodes);
  $('key-form').addEventListener('submit', createKey);
  $('new-sale').addEventListener('click', showSaleForm);
  $('sales-refresh').addEventListener('click', loadSales);
  $('sale-pause').addEventListener('click', () => saleDash?.sale && toggleSalePause(saleDash.sale));
  $('sale-edit').addEventListener('submit', editSale);
  $('points-lookup').addEventListener('submit', lookupMember);
  $('adjust-form').addEventListener('submit', adjustPoints);
  $('points-more').addEventListener('click', moreMemberHistory);
  $('key-copy').addEventListener('click', () => navigator.clipboard?.writeText($('key-value').textContent)
    .then(() => toast(t('keys.copied')), () => {}));
  window.addEventListener('hashchange', route);
  route();
}

start();
