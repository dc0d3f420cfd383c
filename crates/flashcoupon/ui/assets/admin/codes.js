// A unique-codes campaign's codes on its dashboard: a job that generates
// them (a count, an optional pattern), its progress asked for every half
// second while it runs, and the codes' CSV.

import { $, num, t, toast } from '../common.js';
import { call } from './console.js';
import { int } from './form.js';

const MAX_JOB_CODES = 10_000_000;
/** API.md's code pattern: `#` for a random character, at least this many of them. */
const PATTERN = /^[A-Z0-9#-]{1,64}$/;
const MIN_PATTERN_RANDOM = 10;
/** How often a running code job is asked how far it got. */
const JOB_POLL_MS = 500;

/** The codes panel of dashboard `d` (shown for a unique-codes campaign), at its form if `atCodes`. */
export function openCodes(d, atCodes) {
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
    if (!d.stopped && jobs.length > 0) pollJob(d, jobs[0].id);
  } catch (err) {
    if (!d.stopped && err.code !== 'network') toast(err.text, 'error');
  }
}

/** Dashboard `d`'s code job, if any: its progress and status. */
export function renderCodes(d) {
  const job = d?.job;
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
    if (d.stopped) return;
    d.job = job;
    renderCodes(d);
    if (job.status !== 'running') return;
  } catch (err) {
    if (d.stopped) return;
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

/** Start a code job for dashboard `d`'s campaign from the form. */
export async function startCodes(e, d) {
  e.preventDefault();
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
    if (d.stopped) return;
    toast(t('codes.started'), 'ok');
    d.job = job;
    renderCodes(d);
    pollJob(d, job.id);
  } catch (err) {
    if (d.stopped) return;
    $('codes-generate').disabled = false;
    if (fieldsById[err.field]) show(err.field, err.text);
    else $('codes-error').textContent = err.text;
  }
}
