// Helpers for browser scenarios against a running phivault: Debian's
// chromium driven by playwright-core, axe-core for accessibility, otpauth
// for the sign-in's TOTP codes. Scenarios are node:test files run by
// e2e.runBrowserScenario, which starts the server and sets:
//
//   PHIVAULT_URL          FHIR base URL, https://127.0.0.1:PORT/fhir
//   PHIVAULT_CACERT       the server's self-signed certificate (PEM)
//   PHIVAULT_PEOPLE       JSON: {"dr.demo": {"username", "password", "totpSecret"}, ...}
//   PHIVAULT_CHROMIUM     the chromium binary (default /usr/bin/chromium)
//   PHIVAULT_SCREENSHOTS  optional: a folder for screenshot(); unset, none are taken
//
// TLS stays verified in spirit: chromium accepts the server's certificate
// only, by its public key (--ignore-certificate-errors-spki-list), not any
// certificate, so the pages are a secure context as they are in use.
//
// The pages' Content-Security-Policy stays in force (no bypassCSP), so a
// page that needs an inline script or style shows up here as it would in
// use: watch() records every CSP violation and assertClean() fails on it.
// axe-core is run through page.evaluate, which the DevTools protocol
// exempts from CSP, instead of a <script> tag the policy would block.
import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';
import * as OTPAuth from 'otpauth';

const require = createRequire(import.meta.url);

/** The FHIR base URL, e.g. https://127.0.0.1:PORT/fhir. */
export const baseURL = requireEnv('PHIVAULT_URL');
/** The server's origin, e.g. https://127.0.0.1:PORT. */
export const origin = new URL(baseURL).origin;

/** Viewport of every page, and so the width of every screenshot. */
export const viewport = { width: 1280, height: 800 };

function requireEnv(name) {
  const v = process.env[name];
  assert.ok(v, `${name} is not set; run this scenario through e2e.runBrowserScenario`);
  return v;
}

/**
 * people returns the people the Go test passed, by username; each has
 * username, password and totpSecret.
 */
export function people() {
  return JSON.parse(requireEnv('PHIVAULT_PEOPLE'));
}

/** person returns one of people() by username, failing if it was not passed. */
export function person(username) {
  const p = people()[username];
  assert.ok(p, `no person ${username} in PHIVAULT_PEOPLE; pass it from the Go test`);
  return p;
}

// spkiHash is the base64 SHA-256 of the certificate's public key, the form
// chromium's --ignore-certificate-errors-spki-list takes.
async function spkiHash(pemFile) {
  const cert = new X509Certificate(await readFile(pemFile));
  const der = cert.publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

/**
 * launch starts chromium headless with the flags this machine needs (no
 * background networking: the network is closed) and trusting the server's
 * certificate. Close the browser in after().
 */
export async function launch() {
  const executablePath = process.env.PHIVAULT_CHROMIUM || '/usr/bin/chromium';
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--ignore-certificate-errors-spki-list=${await spkiHash(requireEnv('PHIVAULT_CACERT'))}`,
    ],
  });
}

/**
 * newPage opens a page in a fresh context (no cookies) with a fixed
 * viewport, locale, time zone and color scheme, so screenshots are stable,
 * and watches it (see watch). Actions time out after 15 s.
 */
export async function newPage(browser) {
  const context = await browser.newContext({
    viewport,
    locale: 'en-US',
    timezoneId: 'UTC',
    colorScheme: 'light',
    reducedMotion: 'reduce',
  });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  await watch(page);
  return page;
}

const watched = new WeakMap(); // page -> problems seen since the last assertClean

/**
 * watch records on page, until assertClean: Content-Security-Policy
 * violations (from the securitypolicyviolation event, through an init
 * script, which CSP does not govern), uncaught exceptions and console
 * errors.
 */
export async function watch(page) {
  const problems = [];
  watched.set(page, problems);
  await page.exposeBinding('__phivaultCSP', (_source, v) => {
    problems.push(`CSP violation: ${v.directive} blocked ${v.blocked || '(inline)'} on ${new URL(v.documentURI).pathname}`);
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      // eslint-disable-next-line no-undef
      __phivaultCSP({ directive: e.effectiveDirective, blocked: e.blockedURI, documentURI: e.documentURI });
    });
  });
  page.on('pageerror', (err) => problems.push(`uncaught exception: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
}

/**
 * assertClean fails if page had a CSP violation, an uncaught exception or
 * a console error since watch (or the last assertClean). ignore holds
 * regular expressions for expected messages (e.g. a 401 the page caused
 * on purpose).
 */
export function assertClean(page, ignore = []) {
  const problems = (watched.get(page) ?? []).splice(0).filter((p) => !ignore.some((re) => re.test(p)));
  if (problems.length > 0) {
    assert.fail(`${problems.length} problem(s) on ${where(page)}:\n  ${problems.join('\n  ')}`);
  }
}

// where names page's location for messages: its path, without the query,
// which may carry state or identifiers.
function where(page) {
  const u = new URL(page.url());
  return u.protocol === 'about:' ? page.url() : u.pathname;
}

let axeSource;

/**
 * checkA11y runs axe-core on the page as it is now and fails on any
 * violation of impact serious or critical, listing each rule, its help
 * URL and the elements (CSS selectors) that break it. Violations of lower
 * impact are printed, not failed. name labels the page in messages.
 */
export async function checkA11y(page, name) {
  axeSource ??= await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
  // page.evaluate is not subject to the page's CSP; a <script> tag would be.
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { resultTypes: ['violations'] }).then((r) =>
      r.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
        targets: v.nodes.map((n) => n.target.join(' ')),
      })),
    ),
  );
  const describe = (v) => `  [${v.impact}] ${v.id}: ${v.help} (${v.helpUrl})\n${v.targets.map((t) => `      ${t}`).join('\n')}`;
  const minor = result.filter((v) => v.impact !== 'serious' && v.impact !== 'critical');
  if (minor.length > 0) {
    console.log(`axe on ${name}: ${minor.length} minor or moderate violation(s):\n${minor.map(describe).join('\n')}`);
  }
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.ok(bad.length === 0, `axe on ${name} (${where(page)}): ${bad.length} serious or critical violation(s):\n${bad.map(describe).join('\n')}`);
}

/**
 * screenshot saves a full-page PNG of page as name (e.g. "signin.png") in
 * PHIVAULT_SCREENSHOTS, and does nothing when that is unset.
 */
export async function screenshot(page, name) {
  const dir = process.env.PHIVAULT_SCREENSHOTS;
  if (!dir) return;
  assert.match(name, /^[a-z0-9-]+\.png$/, `screenshot name ${name}: use lowercase letters, digits, - and .png`);
  await mkdir(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, name), fullPage: true, animations: 'disabled', caret: 'hide' });
}

// isFocused reports whether locator's element has the keyboard focus.
function isFocused(locator) {
  return locator.evaluate((el) => el === document.activeElement);
}

/**
 * tabTo presses Tab until locator's element has the focus, from wherever
 * the focus is now, and fails if it is not reached within maxTabs presses
 * (not reachable by keyboard, or behind too many other stops). It returns
 * the number of presses.
 */
export async function tabTo(page, locator, maxTabs = 30) {
  await locator.waitFor();
  for (let n = 0; n <= maxTabs; n++) {
    if (await isFocused(locator)) return n;
    await page.keyboard.press('Tab');
  }
  const focused = await page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return 'the page itself';
    const attrs = ['id', 'name', 'role', 'aria-label'].filter((a) => el.hasAttribute(a)).map((a) => `${a}="${el.getAttribute(a)}"`);
    return `<${el.tagName.toLowerCase()}${attrs.map((a) => ' ' + a).join('')}> ${(el.textContent ?? '').trim().slice(0, 40)}`;
  });
  assert.fail(`${locator} not reached after ${maxTabs} presses of Tab on ${where(page)}; the focus is on ${focused}`);
}

/** pressByKeyboard tabs to locator's element and presses Enter on it. */
export async function pressByKeyboard(page, locator, maxTabs = 30) {
  await tabTo(page, locator, maxTabs);
  await page.keyboard.press('Enter');
}

/**
 * authorizeURL returns a SMART authorization URL (code flow with PKCE S256)
 * for clientID and redirectURI, with its state and code verifier.
 */
export function authorizeURL({ clientID, redirectURI, scope = 'openid fhirUser user/*.rs', state = randomBytes(12).toString('base64url') }) {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const u = new URL('/oauth/authorize', origin);
  u.search = new URLSearchParams({
    response_type: 'code', client_id: clientID, redirect_uri: redirectURI, scope, state,
    code_challenge: challenge, code_challenge_method: 'S256', aud: baseURL,
  }).toString();
  return { url: u.toString(), state, verifier };
}

const lastStep = new Map(); // username -> TOTP step last used in this process

/**
 * totpCode returns a TOTP code for p (RFC 6238, SHA-1, 6 digits, 30 s)
 * that the server has not seen: the server takes each step once, in
 * order, and allows one step of skew. The first code is that of the next
 * step, since the demo may have used the current one to enrol; each
 * later one takes the step after the last, waiting for the clock when
 * that step is more than one ahead.
 */
export async function totpCode(p) {
  const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(p.totpSecret), algorithm: 'SHA1', digits: 6, period: 30 });
  const now = () => Math.floor(Date.now() / 30_000);
  const step = Math.max(now() + 1, (lastStep.get(p.username) ?? -Infinity) + 1);
  while (step > now() + 1) {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  lastStep.set(p.username, step);
  return totp.generate({ timestamp: step * 30_000 });
}

/**
 * wrongTOTPCode returns a 6-digit code the server would refuse for p now:
 * none of those of the steps it accepts.
 */
export function wrongTOTPCode(p) {
  const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(p.totpSecret), algorithm: 'SHA1', digits: 6, period: 30 });
  const now = Date.now();
  const valid = new Set([-2, -1, 0, 1, 2].map((d) => totp.generate({ timestamp: now + d * 30_000 })));
  for (let n = 0; ; n++) {
    const code = String(n).padStart(6, '0');
    if (!valid.has(code)) return code;
  }
}

/**
 * fillSignIn fills phivault's sign-in page (/oauth/authorize) for p by
 * keyboard only: it tabs to each field from the top of the page, types,
 * tabs to the Sign in button and presses Enter. code overrides the TOTP
 * code (for a wrong one). It does not wait for the result.
 */
export async function fillSignIn(page, p, code) {
  code ??= await totpCode(p);
  for (const [label, value] of [['Username', p.username], ['Password', p.password], ['Authenticator code', code]]) {
    await tabTo(page, page.getByLabel(label, { exact: true }));
    await page.keyboard.type(value);
  }
  await pressByKeyboard(page, page.getByRole('button', { name: 'Sign in' }));
}

/**
 * catchRedirect returns a function that waits for the next navigation to
 * redirectURI and returns its URL. Call it before the action that
 * redirects. A redirect to phivault's own origin (the console) is waited
 * for until the page loads; one elsewhere (a registered app, such as the
 * demo's http://127.0.0.1:8400/callback, where nothing listens) only until
 * the browser asks for it, since the page then fails to load. Playwright's
 * page.route cannot answer it instead: routes do not see the target of a
 * server's redirect.
 */
export function catchRedirect(page, redirectURI) {
  const request = page.waitForRequest((r) => r.isNavigationRequest() && r.url().startsWith(redirectURI));
  return async () => {
    const req = await request;
    const to = new URL(req.url());
    if (to.origin === origin) await page.waitForURL(req.url());
    return to;
  };
}

/**
 * signIn opens the authorization URL for clientID and signs in as p by
 * keyboard; it returns the URL the browser was redirected to, which
 * carries the code and state (see catchRedirect). It fails if the sign-in
 * page shows an alert instead (with the alert's text), or if the redirect
 * carries an error.
 */
export async function signIn(page, p, { clientID, redirectURI, scope }) {
  const auth = authorizeURL({ clientID, redirectURI, scope });
  await page.goto(auth.url);
  const redirected = catchRedirect(page, redirectURI);
  const refused = page.getByRole('alert').waitFor().then(async () => {
    assert.fail(`sign-in as ${p.username} stayed on ${where(page)} with the alert: ${await page.getByRole('alert').innerText()}`);
  });
  const [to] = await Promise.all([Promise.race([redirected(), refused]), fillSignIn(page, p)]);
  refused.catch(() => {}); // the page is gone once redirected
  const error = to.searchParams.get('error');
  assert.equal(error, null, `sign-in as ${p.username} redirected with ${error}: ${to.searchParams.get('error_description')}`);
  assert.equal(to.searchParams.get('state'), auth.state, 'the redirect carries another state');
  return to;
}

/**
 * signInToConsole opens path of the console, is sent to the vault's
 * sign-in page, signs in as p by keyboard, and waits to be back on path.
 */
export async function signInToConsole(page, p, path) {
  await page.goto(origin + path);
  await page.getByRole('heading', { name: 'Sign in', level: 1 }).waitFor();
  await fillSignIn(page, p);
  await page.waitForURL(origin + path);
}

/**
 * checkPage runs axe on the page, saves its screenshot as name.png and
 * fails on any CSP violation or console error (but those matching ignore).
 */
export async function checkPage(page, name, ignore = []) {
  await checkA11y(page, name);
  await screenshot(page, `${name}.png`);
  assertClean(page, ignore);
}
