// The campaign list: each campaign's discount, how it issues, status, stock
// and window, with its dashboard, codes, pause/resume and edit.

import { $, dateTime, discountText, h, num, t, toast } from '../common.js';
import { showForm } from './campaign-form.js';
import { call } from './console.js';

let campaigns = [];

export const campaignsScreen = {
  section: 'list-view',
  match: () => true,
  open: loadCampaigns,
  relabel() {
    renderCampaigns();
    $('form-host').replaceChildren();
  },
};

export function setupCampaigns() {
  $('new').addEventListener('click', () => showForm(null, loadCampaigns));
  $('refresh').addEventListener('click', loadCampaigns);
}

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
        h('button', { type: 'button', class: 'secondary', onclick: () => togglePause(c, loadCampaigns) }, c.paused ? t('admin.resume') : t('admin.pause')),
        h('button', { type: 'button', class: 'secondary', onclick: () => showForm(c, loadCampaigns) }, t('admin.edit'))))));
  $('campaign-rows').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 5, class: 'muted' }, t('admin.empty')))]));
}

/** How a campaign issues, when not by the plain claim button; else ''. */
export function issuanceText(c) {
  if (c.trigger) return t('admin.auto_short', { trigger: triggerLabel(c.trigger) });
  if (c.issuance === 'codes') return t('issuance.codes');
  if (c.issuance === 'shared_code') return t('codes.shared', { code: c.code ?? '' });
  return '';
}

function triggerLabel(trigger) {
  return trigger.startsWith('custom:') ? `${t('trigger.opt.custom')} ${trigger.slice('custom:'.length)}` : t(`trigger.opt.${trigger}`);
}

/** Pause or resume a campaign, then `then()` (the screen shown reads it again). */
export async function togglePause(c, then) {
  try {
    await call('PATCH', `/api/v1/campaigns/${c.id}`, { paused: !c.paused });
  } catch (err) {
    toast(err.text, 'error');
  }
  then();
}
