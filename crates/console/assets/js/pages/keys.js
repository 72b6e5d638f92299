// Signing keys: the current and next key, and rotation after a confirmation.

import { api } from '../api.js';
import { h, kv, confirmDialog, notice, failed, statusRegion } from '../dom.js';

export const title = 'Keys';

export async function render(main) {
  const region = statusRegion();
  const box = h('div', {});
  const show = (k) => box.replaceChildren(kv([
    ['Current signing key', h('code', {}, k.current)],
    ['Next signing key', h('code', {}, k.next)],
  ]));
  const rotate = h('button', { type: 'button', class: 'danger' }, 'Rotate keys…');
  rotate.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: 'Rotate the signing keys?',
      body: ['The next key becomes the current key and a new next key is made. Deliveries are signed with the new current key at once.',
        'Receivers that verify with the old current key only will reject them: give them the new keys first.'],
      confirm: 'Rotate',
      danger: true,
    });
    if (!ok) return;
    try {
      show(await api('POST', '/v2/keys/rotate'));
      notice(region, 'ok', 'Rotated.');
    } catch (e) { failed(region, e); }
  });
  main.append(h('h1', {}, 'Signing keys'),
    h('p', { class: 'hint' }, 'Destinations check Upstash-Signature with these (QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY).'),
    region, box, h('p', {}, rotate));
  try { show(await api('GET', '/v2/keys')); } catch (e) { failed(region, e); }
}
