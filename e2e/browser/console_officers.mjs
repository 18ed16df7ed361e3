// The console's officers' pages (/console/) in a real browser, through the
// real binary, by keyboard alone:
//
//   - the security admin (admin.demo) reads the overview, the people and
//     the keys and vault; asks for a shred, which waits for a second admin,
//     and withdraws it; suspends an account with a reason and activates
//     it again; is answered the page again, nothing done, on a wrong
//     "SEAL" confirmation; and is refused the access report and the
//     incident's breach page (privacy officers' only);
//   - the privacy officer (privacy.demo) follows the incident from the
//     list to its page and its breach page; finds a patient (by name,
//     else by id: the default policies hide patients from her search) and
//     reads their access report and its CSV and PDF exports; searches the
//     audit trail for the patient's entries, gives the page the verifier
//     key and verifies an entry in the browser, and sees a tampered one
//     fail; and is refused the people and the keys.
//
// Every page passes axe, keeps its CSP and logs no error; with
// PHIVAULT_SCREENSHOTS set, each is saved. Run by e2e.TestBrowser_console
// (through console_all.mjs, after console.mjs), which also sets:
//
//   PHIVAULT_INCIDENT             the id of the open incident of the decoy's read
//   PHIVAULT_PATIENT              the id of a patient the operator has read (not the decoy)
//   PHIVAULT_PATIENT_NAME         their family name
//   PHIVAULT_AUDIT_VERIFIER_KEY   the vault's audit-verifier.pub
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import {
  assertClean, checkPage, launch, newPage, origin, person, pressByKeyboard, signInToConsole, tabTo,
} from './lib.mjs';

const incidentID = process.env.PHIVAULT_INCIDENT;
const patientID = process.env.PHIVAULT_PATIENT;
const patientName = process.env.PHIVAULT_PATIENT_NAME;
const verifierKey = process.env.PHIVAULT_AUDIT_VERIFIER_KEY;

// The account the security admin suspends and activates again: one no
// scenario of this run signs in as.
const suspendee = 'dr.demo';

let browser;
before(async () => {
  for (const [name, v] of Object.entries({ incidentID, patientID, patientName, verifierKey })) {
    assert.ok(v, `${name} must be set (PHIVAULT_INCIDENT, PHIVAULT_PATIENT, PHIVAULT_PATIENT_NAME, PHIVAULT_AUDIT_VERIFIER_KEY)`);
  }
  browser = await launch();
});
after(() => browser?.close());


// follow goes to the navigation's link label by keyboard and waits for
// the page's heading h1.
async function follow(page, label, h1) {
  await pressByKeyboard(page, page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: label, exact: true }));
  await page.getByRole('heading', { name: h1, level: 1 }).waitFor();
}

// refused opens each of paths and checks that it is the 403 page, which
// shows none of the ids in secrets.
async function refused(page, paths, secrets) {
  for (const path of paths) {
    const res = await page.goto(origin + path);
    assert.equal(res.status(), 403, `${path}`);
    await page.getByRole('heading', { name: 'Not allowed', level: 1 }).waitFor();
    const html = await page.content();
    for (const s of secrets) assert.ok(!html.includes(s), `the 403 page of ${path} shows ${s}`);
  }
  assertClean(page, [/status of 403/]);
}

// main returns the text of the page's main region.
function main(page) {
  return page.locator('main').innerText();
}

// The two people's tests are independent (neither changes what the other
// checks): they run side by side, each in its own context.
describe('officers', { concurrency: 2 }, () => {
  test('a security admin reads people and keys, suspends and restores an account by keyboard, and is refused the privacy officer\'s pages', async () => {
    const page = await newPage(browser);
    await signInToConsole(page, person('admin.demo'), '/console/');
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    const nav = await page.getByRole('navigation', { name: 'Console' }).getByRole('link').allInnerTexts();
    assert.deepEqual(nav, ['Overview', 'Alerts', 'Incidents', 'Audit', 'People', 'Keys & vault', 'Report something', 'My reports']);
    await checkPage(page, 'overview-admin');

    await follow(page, 'People', 'People');
    const row = page.locator('tr[id^="user-"]').filter({ hasText: suspendee });
    assert.equal(await row.count(), 1, `${suspendee} is not listed once`);
    assert.equal((await row.locator('.state').innerText()).trim(), 'active');
    await checkPage(page, 'people');

    // Suspend, then activate again, each with a reason, by keyboard.
    for (const [verb, after] of [['Suspend', 'suspended'], ['Activate', 'active']]) {
      await tabTo(page, row.getByLabel('Reason code', { exact: true }), 80);
      await page.keyboard.type(verb === 'Suspend' ? 'investigation' : 'investigation-closed');
      await pressByKeyboard(page, row.getByRole('button', { name: `${verb} ${suspendee}` }));
      await page.getByRole('status').waitFor();
      assert.equal((await row.locator('.state').innerText()).trim(), after, `after ${verb}`);
    }
    assertClean(page);

    await follow(page, 'Keys & vault', 'Keys and vault');
    assert.match(await main(page), /unsealed/);
    await checkPage(page, 'keys');

    // The server makes a shred wait for a second security admin: asked
    // for, nothing is done, the page lists it with the approval disabled
    // for the one who asked, and withdrawing it drops it.
    assert.match(await main(page), /wait for a second security admin/);
    await tabTo(page, page.locator('#shred-target'), 60);
    await page.keyboard.type(patientID);
    await tabTo(page, page.locator('#shred-confirm'), 5);
    await page.keyboard.type(patientID);
    await pressByKeyboard(page, page.getByRole('button', { name: 'Shred the patient' }));
    await page.getByRole('status').filter({ hasText: 'awaits a second security admin' }).waitFor();
    const waiting = page.locator('#h-changes + div table tbody tr');
    assert.equal(await waiting.count(), 1, 'the shred is not listed once as waiting');
    assert.match(await waiting.innerText(), new RegExp(`shred[\\s\\S]*patient ${patientID}[\\s\\S]*destructive`));
    assert.ok(await waiting.getByRole('button', { name: 'Approve' }).isDisabled(), 'the one who asked may approve');
    await checkPage(page, 'keys-awaits');
    await tabTo(page, waiting.getByRole('button', { name: 'Withdraw' }), 80);
    await pressByKeyboard(page, waiting.getByRole('button', { name: 'Withdraw' }));
    await page.getByRole('status').filter({ hasText: 'rejected; nothing was done' }).waitFor();
    assert.match(await main(page), /No change awaits a second admin/);

    // A confirmation that is not exactly SEAL: the page again, with the
    // reason, and the vault still unsealed.
    await tabTo(page, page.getByLabel('Type SEAL to confirm'), 60);
    await page.keyboard.type('seal');
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${origin}/console/keys/seal`),
      pressByKeyboard(page, page.getByRole('button', { name: 'Seal the vault' })),
    ]);
    assert.equal(res.status(), 400);
    await page.getByRole('alert').waitFor();
    assert.match(await main(page), /unsealed: records are served/);
    await checkPage(page, 'keys-refused', [/status of 400/]);

    // The incident, without the privacy officer's breach page.
    await page.goto(`${origin}/console/incidents/${incidentID}`);
    await page.getByRole('heading', { name: 'Actions' }).waitFor();
    assert.equal(await page.getByRole('link', { name: /Breach impact/ }).count(), 0, 'the breach page is linked for a security admin');
    assertClean(page);

    await refused(page, ['/console/access', `/console/access/${patientID}`, `/console/incidents/${incidentID}/breach`], [patientID]);
  });

  test('a privacy officer follows an incident, reads an access report and its exports, verifies an audit entry in the browser, and is refused the admins\' pages', async () => {
    const page = await newPage(browser);
    await signInToConsole(page, person('privacy.demo'), '/console/incidents');
    await page.getByRole('heading', { name: 'Incidents', level: 1 }).waitFor();
    const nav = await page.getByRole('navigation', { name: 'Console' }).getByRole('link').allInnerTexts();
    assert.deepEqual(nav, ['Overview', 'Alerts', 'Incidents', 'Access report', 'Audit', 'Report something', 'My reports']);
    const link = page.locator(`a[href="/console/incidents/${incidentID}"]`);
    assert.equal(await link.count(), 1, 'the open incident is not listed');
    await checkPage(page, 'incidents');

    // The incident, opened from the list, and its breach page.
    await pressByKeyboard(page, link);
    await page.waitForURL(`${origin}/console/incidents/${incidentID}`);
    await page.getByRole('heading', { name: 'Timeline' }).waitFor();
    assert.match(await page.getByRole('heading', { level: 1 }).innerText(), /Decoy patient touched by/);
    await checkPage(page, 'incident');
    await pressByKeyboard(page, page.getByRole('link', { name: 'Breach impact and notice letters' }), 60);
    await page.getByRole('heading', { name: 'Breach impact', level: 1 }).waitFor();
    // The operator's read of the decoy succeeded: that patient's record left.
    assert.match(await main(page), /Secured\s+no/);
    await checkPage(page, 'incident-breach');

    // The access report: the privacy officers' lookup finds the patient
    // by name, posted: the name goes into no address.
    await follow(page, 'Access report', 'Access report');
    await tabTo(page, page.getByLabel('Name or identifier'));
    await page.keyboard.type(patientName);
    const [search] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${origin}/console/access` && r.request().method() === 'POST'),
      pressByKeyboard(page, page.getByRole('button', { name: 'Find' })),
    ]);
    assert.equal(search.status(), 200);
    await page.getByRole('table').waitFor();
    assert.equal(page.url(), `${origin}/console/access`, 'the search went into the address');
    const found = page.locator(`main a[href="/console/access/${patientID}"]`);
    assert.equal(await found.count(), 1, `the name search did not find patient ${patientID}`);
    await checkPage(page, 'access');
    await pressByKeyboard(page, found);
    await page.waitForURL(new RegExp(`/console/access/${patientID}$`));
    await page.getByRole('heading', { name: /Who accessed patient/, level: 1 }).waitFor();
    const accesses = page.locator('main table tbody tr');
    assert.ok(await accesses.count() >= 1, 'the operator\'s read of the decoy is not in its access report');
    await checkPage(page, 'access-report');

    // The exports, downloaded by keyboard.
    for (const [label, ext, magic] of [['Export CSV', 'csv', null], ['Export PDF', 'pdf', '%PDF-']]) {
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        pressByKeyboard(page, page.getByRole('link', { name: label })),
      ]);
      assert.match(download.suggestedFilename(), new RegExp(`\\.${ext}$`), `${label} file name`);
      const body = await readFile(await download.path());
      assert.ok(body.length > 0, `${label} is empty`);
      if (magic) assert.equal(body.subarray(0, magic.length).toString('latin1'), magic, `${label} is not a PDF`);
      else assert.ok(body.toString('utf8').includes(patientID), `${label} does not name the patient`);
    }
    assertClean(page);

    // The audit trail: the verifier key, pasted once and kept; an entry
    // verified by the browser; a tampered copy of another one fails.
    // The patient's entries (the audit search by keyboard): a short page.
    await follow(page, 'Audit', 'Audit trail');
    await tabTo(page, page.getByLabel('Patient id'));
    await page.keyboard.type(patientID);
    await pressByKeyboard(page, page.getByRole('button', { name: 'Search' }));
    await page.waitForURL(/\/console\/audit\?/);
    await tabTo(page, page.getByLabel('Audit verifier key'));
    await page.keyboard.type(verifierKey);
    await page.keyboard.press('Tab'); // the key is read on change
    await page.getByRole('status').filter({ hasText: /Checking against the key of/ }).waitFor();
    const rows = page.locator('table.audit-entries tbody tr');
    assert.ok(await rows.count() >= 2, 'the audit page lists fewer than two entries');
    const verify = async (row, want) => {
      await pressByKeyboard(page, row.getByRole('button', { name: /^Verify entry/ }));
      const out = row.locator('output.proof-result');
      await assert.doesNotReject(out.filter({ hasText: /^(verified|failed|not yet)/ }).waitFor(), 'no result');
      assert.match(await out.innerText(), want);
    };
    await verify(rows.nth(0), /^verified$|^verified: /);

    // The same check on bytes changed on the way: the browser's own answer
    // is "failed". The proof is read here in the page (which trusts the
    // server's certificate), one field of its entry changed, and the
    // page's next proof request answered with it.
    const second = rows.nth(1);
    const data = await page.evaluate(async (i) => (await fetch(`/console/audit/proof?index=${i}`)).json(), await second.getAttribute('data-index'));
    const entry = JSON.parse(Buffer.from(data.entry, 'base64').toString('utf8'));
    const field = Object.keys(entry).find((k) => k !== 'time' && k !== 'actor' && typeof entry[k] === 'string');
    assert.ok(field, 'the entry has no field to change');
    entry[field] += 'x';
    data.entry = Buffer.from(JSON.stringify(entry)).toString('base64');
    await page.route('**/console/audit/proof?*', (route) => route.fulfill({ json: data }));
    await verify(second, /^failed: the inclusion proof does not lead to the checkpoint's root hash/);
    await page.unrouteAll();
    await checkPage(page, 'audit');

    await page.reload();
    assert.equal(await page.getByLabel('Audit verifier key').inputValue(), verifierKey, 'the key is not kept');
    assertClean(page);

    await refused(page, ['/console/people', '/console/keys'], []);
  });
});
