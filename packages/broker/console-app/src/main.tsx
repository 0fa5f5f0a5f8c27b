/**
 * The console's browser app: one bundle (`scripts/bundle-console.mjs`), served as
 * `/console/console.js` under a CSP that allows no inline script. Each page of `pages.ts` is a
 * `<main id="console" data-page="…">` this renders into. Preact writes every value from the API
 * as text, never as HTML (nothing here sets HTML), so a requester's reason shows as text.
 */
import { render } from 'preact';
import { useState } from 'preact/hooks';
import { DevicePage } from './views/device.js';
import { EnrolPage } from './views/enrol.js';
import { HomePage } from './views/home.js';

/** The page's heading, its view, and its status line (what the last action did). */
function Console({ page }: { page: string }) {
  const [status, say] = useState('');
  return (
    <>
      <h1>Tether</h1>
      {page === 'device' ? (
        <DevicePage say={say} />
      ) : page === 'enrol' ? (
        <EnrolPage say={say} />
      ) : (
        <HomePage say={say} />
      )}
      <p id="status" role="status" aria-live="polite">
        {status}
      </p>
    </>
  );
}

const root = document.getElementById('console');
if (root) render(<Console page={root.dataset['page'] ?? 'home'} />, root);
