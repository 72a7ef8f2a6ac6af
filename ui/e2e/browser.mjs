// Debian's Chromium driven by playwright-core (no browser download: .ci/run installs the
// `chromium` package). The flags keep it from reaching for the network, which this machine
// refuses (see /work/.library/env/machines/rust.md).
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export async function launch() {
  const userDataDir = mkdtempSync(join(tmpdir(), 'kinsight-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return context;
}

/** Records console errors and uncaught exceptions of a page. */
export function watchErrors(page, errors) {
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()} (${page.url()})`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message} (${page.url()})`));
  page.on('requestfailed', (r) => {
    const f = r.failure()?.errorText ?? '';
    // Aborted fetches are the console cancelling superseded requests.
    if (!f.includes('ERR_ABORTED')) errors.push(`requestfailed: ${r.url()} ${f}`);
  });
}
