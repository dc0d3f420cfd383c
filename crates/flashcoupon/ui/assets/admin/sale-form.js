// The form for a new time sale: the product (SKU, name, list price), the
// sale price, stock, per-shopper limit, payment window and sale window,
// each checked where it is; the API's refusal is said at the field it names.

import { $, h, t, toast, won } from '../common.js';
import { call } from './console.js';
import {
  field, int, MAX_MONEY, MAX_PER_USER, MAX_TOTAL, numberInput, textField, time, toLocalInput,
} from './form.js';

/** A sale's own limit (domain/sale.rs); the others are the campaign form's. */
const MAX_PAYMENT_TTL = 86_400;

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

/** The form for a new sale; `onSaved()` once the API took it. */
export function showSaleForm(onSaved) {
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
      onSaved();
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
