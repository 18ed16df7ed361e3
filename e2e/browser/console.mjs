// The console (/console/) in a real browser, through the real binary:
// a privacy officer signs in with password and TOTP by keyboard alone,
// looks at the overview and the alerts, and triages the alert the Go test
// raised; a nurse sends an anonymous report and follows it with its
// receipt, and is refused the officers' pages; a form posted without the
// session's CSRF token is refused; a stale session is sent back to sign
// in. Every page passes axe and keeps its CSP. Run by
// e2e.TestBrowser_console, which also sets:
//
//   PHIVAULT_ALERT    the id of an open alert to triage
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertClean, checkPage, launch, newPage, origin, person, pressByKeyboard, signInToConsole, tabTo,
} from './lib.mjs';

const alertID = process.env.PHIVAULT_ALERT;

let browser;
before(async () => {
  assert.ok(alertID, 'PHIVAULT_ALERT must be set');
  browser = await launch();
});
after(() => browser?.close());


test('a privacy officer signs in, reads the overview and the alerts, and triages an alert by keyboard', async () => {
  const page = await newPage(browser);
  await signInToConsole(page, person('privacy.demo'), '/console/');
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
  assert.ok(await page.getByRole('img', { name: /Alerts detected per day/ }).isVisible(), 'no alert chart on the overview');
  // The counts (GET /security/alerts/counts) include the decoy's open alert.
  const pills = await page.locator('#h-alerts ~ p.stats .pill').allInnerTexts();
  const open = pills.reduce((n, t) => n + parseInt(t, 10), 0);
  assert.ok(open >= 1, `the overview counts ${open} open alerts (${pills.join(', ')}), want the decoy's`);
  await checkPage(page, 'overview');

  await pressByKeyboard(page, page.getByRole('link', { name: 'Alerts', exact: true }));
  await page.getByRole('heading', { name: 'Alerts', level: 1 }).waitFor();
  const link = page.locator(`a[href="/console/alerts/${alertID}"]`);
  assert.equal(await link.count(), 1, 'the open alert is not listed');
  await checkPage(page, 'alerts');

  // The filters apply as they change (htmx), without a page load, and
  // the address follows them.
  await page.evaluate(() => { window.phivaultNoReload = true; });
  await page.getByLabel('State').selectOption('true-positive');
  await page.waitForURL(/state=true-positive/);
  await page.locator('#alert-results').getByText('No alert matches these filters.').waitFor();
  assert.equal(await page.evaluate(() => window.phivaultNoReload), true, 'the filter reloaded the page');
  await page.getByLabel('State').selectOption('open');
  await page.waitForURL(/state=open/);
  await link.waitFor();
  assertClean(page);

  await pressByKeyboard(page, link);
  await page.waitForURL(`${origin}/console/alerts/${alertID}`);
  await page.getByRole('heading', { name: 'Triage' }).waitFor();
  await checkPage(page, 'alert');

  await tabTo(page, page.getByLabel(/^Note/));
  await page.keyboard.type('Decoy opened by the operator during a drill.');
  await pressByKeyboard(page, page.getByRole('button', { name: 'True positive' }));
  await page.waitForURL(/triaged=1$/);
  const decisions = page.getByRole('heading', { name: 'Decisions' });
  await decisions.waitFor();
  assert.match(await page.locator('main').innerText(), /true-positive by/);
  assertClean(page);
});

test('a nurse sends an anonymous report, follows it by its receipt, and is refused the officers\' pages', async () => {
  const page = await newPage(browser);
  await signInToConsole(page, person('nurse.demo'), '/console/report');
  assert.deepEqual(await page.getByRole('navigation', { name: 'Console' }).getByRole('link').allInnerTexts(), ['Report something', 'My reports']);
  await checkPage(page, 'report');

  await tabTo(page, page.getByLabel('A suspicious e-mail, message or call (phishing)'));
  await tabTo(page, page.getByLabel(/^Describe it/));
  await page.keyboard.type('An e-mail asked me to sign in to a page that looked like ours.');
  await tabTo(page, page.getByLabel('Send it anonymously'));
  await page.keyboard.press('Space');
  await pressByKeyboard(page, page.getByRole('button', { name: 'Send the report' }));
  await page.getByRole('heading', { name: /your report is in/ }).waitFor();
  const receipt = (await page.locator('#receipt').innerText()).trim();
  const id = (await page.locator('.lead code').innerText()).trim();
  assert.match(receipt, /.{20,}/);
  await checkPage(page, 'report-sent');

  await page.goto(origin + '/console/reports');
  assert.match(await page.locator('main').innerText(), /You have sent no reports under your name/, 'the anonymous report is listed under the nurse');
  await tabTo(page, page.getByLabel('Report number', { exact: true }));
  await page.keyboard.type(id);
  await tabTo(page, page.getByLabel('Receipt', { exact: true }));
  await page.keyboard.type(receipt);
  await pressByKeyboard(page, page.getByRole('button', { name: 'Show its state' }));
  await page.getByRole('heading', { name: `Report ${id}` }).waitFor();
  assert.match(await page.locator('main').innerText(), /received/);
  await checkPage(page, 'reports');

  for (const path of ['/console/', '/console/alerts', `/console/alerts/${alertID}`]) {
    const res = await page.goto(origin + path);
    if (path === '/console/') {
      assert.equal(new URL(page.url()).pathname, '/console/report', 'the nurse\'s home is not the report form');
      continue;
    }
    assert.equal(res.status(), 403, `${path} for a nurse`);
    await page.getByRole('heading', { name: 'Not allowed', level: 1 }).waitFor();
    assert.doesNotMatch(await page.content(), new RegExp(alertID), `${path} shows the alert to a nurse`);
  }
  await checkPage(page, 'not-allowed', [/status of 403/]);

  // A form posted without the session's CSRF token changes nothing.
  const status = await page.evaluate(async () => {
    const body = new URLSearchParams({ kind: 'other', description: 'no token' });
    return (await fetch('/console/report', { method: 'POST', body })).status;
  });
  assert.equal(status, 403);
  assertClean(page, [/status of 403/]);
});

test('a stale session is sent back to sign in', async () => {
  const page = await newPage(browser);
  await page.context().addCookies([{ name: '__Host-phivault-console', value: 'A'.repeat(43), url: origin, secure: true, httpOnly: true, sameSite: 'Strict' }]);
  await page.goto(origin + '/console/alerts');
  await page.getByRole('heading', { name: 'Sign in', level: 1 }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/oauth/authorize');
  assertClean(page);
});
