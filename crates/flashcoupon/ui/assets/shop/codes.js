// The coupon-code box in the wallet: a code checked for its shape, redeemed
// with one Idempotency-Key per press, every refusal in words, and a 429's
// wait counted down before the button comes back.

import { $, api, newId, num, setText, showResult, t, toast, withOneRetry } from '../common.js';
import { campaignName, hold, refreshHeld, takeCodeRequest, updateCard } from './drops.js';
import { currentView, onSignOut, onViewChange, session, signOut } from './page.js';
import { loadWallet } from './wallet.js';

/** The shape any code has (the API checks again): letters, digits, hyphens. */
const CODE_SHAPE = /^[A-Za-z0-9-]{1,64}$/;

/** A redemption in flight, the time a 429 lets it try again, its last
 * result ({ok, text()}: re-rendered in the chosen language). */
const redeem = { busy: false, until: 0, result: null };

onSignOut(() => {
  redeem.result = null;
  $('redeem-code').value = '';
  renderRedeem();
});

onViewChange((view) => {
  // Arrived by a drop's "redeem with a code": straight to the box.
  if (view === 'wallet' && session.signedIn && takeCodeRequest()) $('redeem-code').focus();
});

export function setupCodeBox() {
  $('redeem-form').addEventListener('submit', redeemCode);
  $('redeem-code').addEventListener('input', () => $('redeem-code').removeAttribute('aria-invalid'));
  renderRedeem();
}

export function renderRedeem() {
  const waiting = Math.ceil((redeem.until - Date.now()) / 1000);
  const button = $('redeem-submit');
  setText(button, redeem.busy ? t('redeem.submitting') : t('redeem.submit'));
  button.disabled = redeem.busy || waiting > 0;
  button.setAttribute('aria-busy', redeem.busy ? 'true' : 'false');
  showResult($('redeem-result'), redeem.result);
}

/** A 429's wait counts down in the box, and the button comes back. */
export function tickRedeem() {
  if (!redeem.until) return;
  if (redeem.until <= Date.now()) {
    redeem.until = 0;
    if (redeem.result && !redeem.result.ok) redeem.result = null;
  }
  renderRedeem();
}

/** The words for a refused redemption. */
function redeemFailure(err) {
  switch (err.code) {
    case 'not_found': return () => t('redeem.not_found');
    case 'code_used': return () => t('redeem.code_used');
    case 'invalid_input': return () => t('redeem.bad_shape');
    case 'rate_limited': return () => {
      const left = Math.ceil((redeem.until - Date.now()) / 1000);
      return left > 0 ? t('redeem.rate_limited', { seconds: num(left) }) : t('redeem.rate_limited_soon');
    };
    case 'sold_out': case 'limit_reached': case 'not_open': case 'ended': case 'paused': case 'not_claimable':
      return () => t('redeem.refused', { reason: err.text });
    default: return () => err.text;
  }
}

function failRedeem(text, codeIsWrong) {
  redeem.result = { ok: false, text };
  const input = $('redeem-code');
  if (codeIsWrong) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
  input.focus();
}

async function redeemCode(e) {
  e.preventDefault();
  if (!session.signedIn || redeem.busy || redeem.until > Date.now()) return;
  const input = $('redeem-code');
  const code = input.value.trim();
  redeem.result = null;
  if (!code) failRedeem(() => t('redeem.empty'), true);
  else if (!CODE_SHAPE.test(code)) failRedeem(() => t('redeem.bad_shape'), true);
  if (redeem.result) {
    renderRedeem();
    return;
  }
  input.removeAttribute('aria-invalid');
  redeem.busy = true;
  renderRedeem();
  // One key per press: a retry after a network error cannot redeem twice.
  const key = newId();
  try {
    const coupon = await withOneRetry(() => api(session, 'POST', '/api/v1/codes/redeem', { code }, { 'Idempotency-Key': key }));
    hold(coupon.campaign_id, coupon.id);
    const name = await campaignName(coupon.campaign_id);
    redeem.result = { ok: true, text: () => t('redeem.ok', { name }) };
    toast(t('redeem.ok', { name }), 'ok');
    input.value = '';
    updateCard(coupon.campaign_id);
    if (currentView() === 'wallet') loadWallet();
  } catch (err) {
    if (err.code === 'unauthorized') {
      signOut();
      return;
    }
    if (err.code === 'rate_limited') redeem.until = Date.now() + 1000 * (err.retryAfter ?? 1);
    if (err.code === 'limit_reached') refreshHeld();
    failRedeem(redeemFailure(err), ['not_found', 'code_used', 'invalid_input'].includes(err.code));
  } finally {
    redeem.busy = false;
    renderRedeem();
  }
}
