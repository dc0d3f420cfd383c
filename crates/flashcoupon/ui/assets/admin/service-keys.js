// Service keys: the shop's servers' keys for the issue and checkout API,
// each shown once when made, listed with their last use, and deleted.

import { $, dateTime, h, t, toast } from '../common.js';
import { call } from './console.js';

export const keysScreen = {
  section: 'keys-view',
  match: (hash) => hash === '#/keys',
  open: loadKeys,
  relabel: renderKeys,
};

export function setupKeys() {
  $('key-form').addEventListener('submit', createKey);
  $('key-copy').addEventListener('click', () => navigator.clipboard?.writeText($('key-value').textContent)
    .then(() => toast(t('keys.copied')), () => {}));
}

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
