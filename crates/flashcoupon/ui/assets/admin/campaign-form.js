// The campaign form: create (issued by the claim button, unique codes, a
// shared code or a trigger; a discount; stock, window and validity), or
// edit what a campaign may still change (its stock and end). Each field is
// checked where it is, and the API's refusal is said at the field it names.

import { $, h, t, toast } from '../common.js';
import { call } from './console.js';
import {
  field, int, MAX_MONEY, MAX_PER_USER, MAX_TOTAL, MAX_VALID_DAYS, numberInput, time, toLocalInput,
} from './form.js';

/** API.md's shapes: a shared code, a custom trigger's name. */
const SHARED_CODE = /^[A-Za-z0-9-]{4,32}$/;
const TRIGGER_NAME = /^[a-z0-9_.-]{1,64}$/;

/** Show the form for `existing` (null: a new campaign); `onSaved()` once the API took it. */
export function showForm(existing, onSaved) {
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
      onSaved();
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
