// Saving an admin export (winners, codes) as a file. A link cannot send
// the Authorization header, so: fetch it, then save the Blob through an
// object URL (a download, which the page's CSP does not govern).

import { ApiError, h, toast } from '../common.js';
import { session, signOut } from './console.js';

/** The export at `path`, saved as `filename`; `button` is off while it downloads. */
export async function downloadCsv(path, filename, button) {
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
    if (e.code === 'unauthorized' || e.code === 'forbidden') signOut();
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
