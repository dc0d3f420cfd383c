// The inbox (알림함): my notifications in words, Korean or English (the
// campaigns', coupons', points', orders' and time sales' news), the unread
// badge in the menu, and "mark all read".

import { $, api, dateTime, day, h, num, points, t, toast, won } from '../common.js';
import { knownCampaignName } from './drops.js';
import { onViewChange, session } from './page.js';
import { saleById } from './sales.js';

onViewChange((view) => {
  if (view === 'inbox' && session.signedIn) loadInbox();
});

export function setupInbox() {
  $('read-all').addEventListener('click', readAll);
}

/** A notification (from the inbox or the socket) in words. */
export function eventText(e) {
  const d = e.data ?? {};
  const name = d.campaign_name ?? knownCampaignName(e.campaign_id);
  switch (e.type) {
    case 'coupon.issued': return t('event.coupon.issued', { seq: d.seq });
    case 'coupon.claim_failed': {
      const key = `err.${d.reason}`;
      const reason = t(key) === key ? d.message ?? d.reason : t(key);
      return t('event.coupon.claim_failed', { reason });
    }
    case 'coupon.expiring_soon': return t('event.coupon.expiring_soon', { until: dateTime(d.valid_until) });
    case 'coupon.used': return t('event.coupon.used', { discount: won(d.discount_amount ?? 0) });
    case 'coupon.reservation_expired': return t('event.coupon.reservation_expired', { order: d.order_id });
    case 'points.earned': return [t('event.points.earned', { amount: points(d.amount ?? 0) }), d.reason].filter(Boolean).join(' · ');
    case 'points.expiring_soon': return t('event.points.expiring_soon', { amount: points(d.amount ?? 0), date: day(d.expires_at) });
    case 'points.spent': return [t('event.points.spent', { amount: points(d.amount ?? 0) }), d.order_id].filter(Boolean).join(' · ');
    case 'order.created': case 'order.paid': case 'order.expired': case 'order.cancelled': case 'order.refunded':
      return t(`event.${e.type}`, { sale: saleById(d.sale_id)?.name ?? '', amount: won(d.payable_amount ?? 0) });
    // A sale's news carries its name: this page may never have read the list of sales.
    case 'sale.opening_soon': case 'sale.opened': case 'sale.sold_out':
      return t(`event.${e.type}`, {
        sale: d.sale_name ?? saleById(d.sale_id)?.name ?? '',
        at: d.starts_at ? dateTime(d.starts_at) : '',
        total: num(d.total_quantity ?? 0),
      });
    default: {
      // A type this page has no words for (a newer server): say it is news, not the label's key.
      const key = `event.${e.type}`;
      return t(key) === key ? t('event.other', { type: e.type }) : t(key, { name });
    }
  }
}

export async function loadInbox() {
  let r;
  try {
    r = await api(session, 'GET', '/api/v1/me/notifications?limit=100');
  } catch (err) {
    toast(err.text, 'error');
    return;
  }
  showUnread(r.unread_count);
  const items = r.notifications.map((n) => h('li', { class: n.read ? 'read' : 'unread', 'data-testid': 'notification' },
    h('span', { class: 'when' }, dateTime(n.at)), ' ', eventText(n)));
  $('inbox-list').replaceChildren(...(items.length ? items : [h('li', { class: 'muted' }, t('inbox.empty'))]));
}

function showUnread(n) {
  $('unread').hidden = !n;
  $('unread').textContent = n > 99 ? '99+' : String(n);
}

export async function refreshUnread() {
  try {
    const r = await api(session, 'GET', '/api/v1/me/notifications?limit=1');
    showUnread(r.unread_count);
  } catch {
    // The badge can wait for the next event.
  }
}

async function readAll() {
  try {
    await api(session, 'POST', '/api/v1/me/notifications/read', { all: true });
  } catch (err) {
    toast(err.text, 'error');
  }
  loadInbox();
}
