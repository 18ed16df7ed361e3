// phivault's sign-in page (GET /oauth/authorize) in a real browser: it
// passes axe, works by keyboard alone, and tells a person who typed a
// wrong authenticator code so, without redirecting. Run by
// e2e.TestBrowser_login, which also sets:
//
//   PHIVAULT_CLIENT_ID     a registered public app (the demo's demo-app)
//   PHIVAULT_REDIRECT_URI  its redirect URI (nothing listens there)
//   PHIVAULT_USERNAME      who signs in (in PHIVAULT_PEOPLE)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertClean, authorizeURL, checkA11y, fillSignIn, launch, newPage, person, screenshot, signIn, wrongTOTPCode,
} from './lib.mjs';

const app = { clientID: process.env.PHIVAULT_CLIENT_ID, redirectURI: process.env.PHIVAULT_REDIRECT_URI };
const username = process.env.PHIVAULT_USERNAME;

let browser;
before(async () => {
  assert.ok(app.clientID && app.redirectURI && username, 'PHIVAULT_CLIENT_ID, PHIVAULT_REDIRECT_URI and PHIVAULT_USERNAME must be set');
  browser = await launch();
});
after(() => browser?.close());

test('the sign-in page passes axe and is screenshotted', async () => {
  const page = await newPage(browser);
  const res = await page.goto(authorizeURL(app).url);
  assert.equal(res.status(), 200);
  await assert.doesNotReject(page.getByRole('heading', { name: 'Sign in', level: 1 }).waitFor());
  await checkA11y(page, 'sign-in');
  await screenshot(page, 'signin.png');
  assertClean(page);
});

test('signing in by keyboard alone redirects to the app with a code', async () => {
  const page = await newPage(browser);
  const to = await signIn(page, person(username), app);
  assert.equal(to.origin + to.pathname, app.redirectURI);
  assert.match(to.searchParams.get('code') ?? '', /.{16,}/, `no code in ${to.origin}${to.pathname}`);
  assert.equal(to.searchParams.get('error'), null);
  assertClean(page);
});

test('a wrong authenticator code shows an error on the page and does not redirect', async () => {
  const page = await newPage(browser);
  let redirected = false;
  page.on('request', (r) => { if (r.url().startsWith(app.redirectURI)) redirected = true; });
  await page.goto(authorizeURL(app).url);
  const p = person(username);
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/oauth/login') && r.request().method() === 'POST'),
    fillSignIn(page, p, wrongTOTPCode(p)),
  ]);
  assert.equal(res.status(), 401, 'the form post with a wrong code did not answer 401 with the page again');
  await page.waitForLoadState();
  const alert = page.getByRole('alert');
  await assert.doesNotReject(alert.waitFor(), 'no alert on the page after a wrong code');
  assert.match(await alert.innerText(), /\S/);
  assert.equal(new URL(page.url()).origin, new URL(res.url()).origin, 'left the sign-in page');
  assert.equal(redirected, false, 'redirected to the app after a wrong code');
  // The form is there again, ready for another try, and still accessible.
  assert.equal(await page.getByLabel('Username', { exact: true }).count(), 1);
  await checkA11y(page, 'sign-in after a wrong code');
  await screenshot(page, 'signin-error.png');
  // The browser logs the 401 of the form post; nothing else may appear.
  assertClean(page, [/status of 401/]);
});
