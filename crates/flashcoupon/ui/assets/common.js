// What both pages share: the API client, the session, labels in two
// languages, money and time formatting, toasts, and a tiny element builder
// (text is always set as text, never parsed as HTML).

import { LANGS, MESSAGES } from './i18n.js';

// ---- labels ---------------------------------------------------------------

let lang = LANGS.includes(localStorage.getItem('fc.lang')) ? localStorage.getItem('fc.lang') : 'ko';
const langListeners = [];

export function t(key, vars = {}) {
  const text = MESSAGES[lang][key] ?? MESSAGES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => (vars[k] ?? `{${k}}`));
}

export function currentLang() {
  return lang;
}

/** Fill every `data-i18n` element, and re-render through the listeners. */
export function applyLabels() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-aria]')) el.setAttribute('aria-label', t(el.dataset.i18nAria));
  for (const el of document.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const fn of langListeners) fn();
}

export function onLangChange(fn) {
  langListeners.push(fn);
}

export function setupLangToggle(button) {
  button.addEventListener('click', () => {
    lang = lang === 'ko' ? 'en' : 'ko';
    localStorage.setItem('fc.lang', lang);
    applyLabels();
  });
}

// ---- formatting -------------------------------------------------------------

/** A count in the chosen language's digits grouping. */
export function num(n) {
  return Number(n).toLocaleString(lang === 'ko' ? 'ko-KR' : 'en-US');
}

export function won(n) {
  return lang === 'ko' ? `${Number(n).toLocaleString('ko-KR')}원` : `₩${Number(n).toLocaleString('en-US')}`;
}

export function discountText(d) {
  if (d.type === 'fixed') return t('discount.fixed', { amount: won(d.amount) });
  if (d.max_amount) return t('discount.percent_max', { percent: d.percent, max: won(d.max_amount) });
  return t('discount.percent', { percent: d.percent });
}

/** Points (적립금): `3,800 P`. */
export function points(n) {
  return `${num(n)} P`;
}

/** A ledger amount with its sign, so a take never reads as a gain: `+3,770 P`, `-100 P`. */
export function signedPoints(n) {
  return `${n > 0 ? '+' : '-'}${points(Math.abs(n))}`;
}

/** A day in this device's zone, the same in both languages: `2026-12-12`. */
export function day(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

export function dateTime(iso) {
  const d = new Date(iso);
  return d.toLocaleString(lang === 'ko' ? 'ko-KR' : 'en-GB', {
    year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

/** `01:02:03`, or `3d 01:02:03` past a day. */
export function countdown(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const days = Math.floor(s / 86400);
  const hms = [Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60, s % 60]
    .map((n) => String(n).padStart(2, '0')).join(':');
  return days > 0 ? `${days}${lang === 'ko' ? '일' : 'd'} ${hms}` : hms;
}

// ---- server time --------------------------------------------------------------

// The server's clock decides when a drop opens; live snapshots carry the
// time they were read, so the countdown follows the server, not this device.
let serverOffset = 0;

export function syncServerTime(isoAt) {
  const at = Date.parse(isoAt);
  if (!Number.isNaN(at)) serverOffset = at - Date.now();
}

export function serverNow() {
  return Date.now() + serverOffset;
}

// ---- session --------------------------------------------------------------------

export class Session {
  constructor(name) {
    this.key = `fc.session.${name}`;
    const saved = JSON.parse(localStorage.getItem(this.key) || 'null');
    this.token = saved?.token ?? null;
    this.email = saved?.email ?? null;
    this.userId = saved?.userId ?? null;
    this.role = saved?.role ?? null;
  }

  get signedIn() {
    return Boolean(this.token);
  }

  save({ token, email, userId, role }) {
    Object.assign(this, { token, email, userId, role });
    localStorage.setItem(this.key, JSON.stringify({ token, email, userId, role }));
  }

  clear() {
    Object.assign(this, { token: null, email: null, userId: null, role: null });
    localStorage.removeItem(this.key);
  }
}

// ---- the API ----------------------------------------------------------------------

export class ApiError extends Error {
  /** `retryAfter`: the seconds of a 429's `Retry-After`, else null. */
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  /** The field an `invalid_input` names (`"code: must be …"` → `code`), else null. */
  get field() {
    if (this.code !== 'invalid_input') return null;
    return this.message.match(/^([\w.]+): /)?.[1] ?? null;
  }

  /** What to show a person: our label for the code, else the server's words. */
  get text() {
    if (this.code === 'invalid_input') return t('err.invalid_input', { message: this.message });
    const key = `err.${this.code}`;
    const label = t(key);
    return label === key ? this.message : label;
  }
}

/** JSON in and out; errors become `ApiError` with the API's code. */
export async function api(session, method, path, body, headers = {}) {
  const h = { ...headers };
  if (body !== undefined) h['content-type'] = 'application/json';
  if (session?.token) h.authorization = `Bearer ${session.token}`;
  let response;
  try {
    response = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'network', 'network');
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const e = data?.error;
    const wait = Number.parseInt(response.headers.get('retry-after') ?? '', 10);
    throw new ApiError(response.status, e?.code ?? 'http_' + response.status, e?.message ?? response.statusText,
      Number.isNaN(wait) ? null : wait);
  }
  return data;
}

/**
 * `send()` once more after no answer (a network error), never after an
 * answer. `send` carries the same Idempotency-Key (or reference) both times,
 * so the server acts once either way.
 */
export async function withOneRetry(send) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      if (err.code !== 'network' || attempt >= 1) throw err;
    }
  }
}

export function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

// ---- elements ----------------------------------------------------------------------

export const $ = (id) => document.getElementById(id);

/** Change text only when it differs, so screen readers are not re-told every tick. */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** A result line: `result` is `{ok, text()}` (text re-read, so it follows the
 * chosen language), or null for none. */
export function showResult(el, result) {
  setText(el, result?.text() ?? '');
  el.className = `result ${result ? (result.ok ? 'ok' : 'bad') : ''}`;
}

/** `h('button', {class: 'x', onclick: fn}, 'text', child)`: children are nodes or text. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// ---- toasts -------------------------------------------------------------------------

export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status', 'data-testid': 'toast' }, text);
  box.append(el);
  setTimeout(() => el.classList.add('toast-out'), 5000);
  setTimeout(() => el.remove(), 5600);
}
