// The admin's form pieces: a labelled input with its own error line, and
// reading inputs checked against the API's limits (domain/campaign.rs,
// domain/discount.rs, domain/sale.rs, points.rs), mirrored so a form says
// what is wrong before anything is sent; the API checks again.

import { h, num, t } from '../common.js';

export const MAX_MONEY = 1_000_000_000_000;
export const MAX_TOTAL = 1_000_000_000;
export const MAX_PER_USER = 1_000;
export const MAX_VALID_DAYS = 3_650;

/** `datetime-local` works in the browser's zone; the API in UTC. */
export function toLocalInput(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fromLocalInput(value) {
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** `input` with its label and an error line it is described by. */
export function field(id, labelKey, input) {
  input.id = id;
  input.setAttribute('aria-describedby', `${id}-error`);
  return h('div', { 'data-field': id },
    h('label', { for: id }, t(labelKey)), input,
    h('p', { class: 'field-error', id: `${id}-error`, 'aria-live': 'polite' }));
}

export function numberInput(attrs = {}) {
  return h('input', { type: 'number', step: 1, inputmode: 'numeric', ...attrs });
}

/** An integer in `min..=max`; else `errors[key]` says why, and undefined. */
export function int(input, min, max, errors, key, optional = false) {
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

/** A `datetime-local` input as a UTC timestamp; else `errors[key]`. */
export function time(input, errors, key) {
  const iso = fromLocalInput(input.value);
  if (!iso) errors[key] = t('v.required');
  return iso;
}

/** Text of 1..`max` characters, trimmed; else `errors[key]` (`message` when too long). */
export function textField(input, max, errors, key, message) {
  const v = input.value.trim();
  if (!v || [...v].length > max) errors[key] = v ? t(message) : t('v.required');
  return v;
}
