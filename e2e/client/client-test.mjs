// Drives a running phivault server with fhir-kit-client, the way a clinical
// app would. Run by e2e.TestFHIRKitClient, which starts the server and sets:
//
//   PHIVAULT_URL          FHIR base URL, e.g. https://127.0.0.1:PORT/fhir
//   PHIVAULT_TOKEN        bearer token
//   NODE_EXTRA_CA_CERTS   the server's self-signed certificate, so TLS verifies
//
// TLS verification stays on: a client that had to turn it off would not be a
// fair test of the server.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Client } from 'fhir-kit-client';

const baseUrl = process.env.PHIVAULT_URL;
const token = process.env.PHIVAULT_TOKEN;

let client;

before(() => {
  assert.ok(baseUrl, 'PHIVAULT_URL is not set');
  assert.ok(token, 'PHIVAULT_TOKEN is not set');
  assert.ok(process.env.NODE_EXTRA_CA_CERTS, 'NODE_EXTRA_CA_CERTS is not set');
  client = new Client({ baseUrl, bearerToken: token });
});

// A family name no other run shares, letters only.
function uniqueFamily(prefix) {
  const hex = randomUUID().replaceAll('-', '').slice(0, 12);
  return prefix + [...hex].map((c) => String.fromCharCode(97 + parseInt(c, 16))).join('');
}

function patient(family, extra = {}) {
  return { resourceType: 'Patient', name: [{ family, given: ['Testa'] }], gender: 'female', ...extra };
}

// rejects calls fn and returns the HTTP error it throws.
async function rejects(fn) {
  try {
    await fn();
  } catch (err) {
    assert.ok(err.response, `expected an HTTP error, got ${err}`);
    return err.response;
  }
  assert.fail('expected the request to fail');
}

function assertOutcome(data) {
  assert.equal(data?.resourceType, 'OperationOutcome', `expected an OperationOutcome, got ${JSON.stringify(data)}`);
  assert.ok(Array.isArray(data.issue) && data.issue.length > 0, 'OperationOutcome has no issue');
}

test('create, read and vread a Patient', async () => {
  const family = uniqueFamily('Crud');
  const created = await client.create({ resourceType: 'Patient', body: patient(family, { birthDate: '1980-02-29' }) });
  assert.equal(created.resourceType, 'Patient');
  assert.ok(created.id, 'created Patient has no id');
  assert.equal(created.meta?.versionId, '1');

  const { response } = Client.httpFor(created);
  assert.equal(response.status, 201);
  assert.match(response.headers.get('location') ?? '', new RegExp(`/Patient/${created.id}/_history/1$`));
  assert.equal(response.headers.get('etag'), 'W/"1"');

  const read = await client.read({ resourceType: 'Patient', id: created.id });
  assert.equal(read.id, created.id);
  assert.equal(read.name[0].family, family);
  assert.equal(read.birthDate, '1980-02-29');

  const vread = await client.vread({ resourceType: 'Patient', id: created.id, version: '1' });
  assert.equal(vread.id, created.id);
  assert.equal(vread.meta.versionId, '1');
});

test('update with If-Match: the current version wins, a stale one gets 412', async () => {
  const created = await client.create({ resourceType: 'Patient', body: patient(uniqueFamily('Match')) });
  const body = { ...created, gender: 'male' };

  const updated = await client.update({
    resourceType: 'Patient', id: created.id, body,
    options: { headers: { 'If-Match': 'W/"1"' } },
  });
  assert.equal(updated.meta.versionId, '2');
  assert.equal(updated.gender, 'male');

  const stale = await rejects(() => client.update({
    resourceType: 'Patient', id: created.id, body: { ...body, gender: 'other' },
    options: { headers: { 'If-Match': 'W/"1"' } },
  }));
  assert.equal(stale.status, 412);
  assertOutcome(stale.data);

  const read = await client.read({ resourceType: 'Patient', id: created.id });
  assert.equal(read.meta.versionId, '2');
  assert.equal(read.gender, 'male', 'the stale update was applied');

  const history = await client.history({ resourceType: 'Patient', id: created.id });
  assert.equal(history.resourceType, 'Bundle');
  assert.equal(history.type, 'history');
  const versions = history.entry.map((e) => e.resource.meta.versionId).sort();
  assert.deepEqual(versions, ['1', '2']);
});

test('search follows next links until every match is seen once', async () => {
  const family = uniqueFamily('Page');
  const want = new Set();
  for (let i = 0; i < 8; i++) {
    const p = await client.create({ resourceType: 'Patient', body: patient(family) });
    want.add(p.id);
  }
  // A Patient with another family name must not show up.
  await client.create({ resourceType: 'Patient', body: patient(family + 'x') });

  const seen = new Map();
  let pages = 0;
  let bundle = await client.search({ resourceType: 'Patient', searchParams: { family, _count: 3 } });
  while (bundle) {
    assert.equal(bundle.type, 'searchset');
    pages++;
    assert.ok(pages <= 10, 'too many pages: the next links do not end');
    const entries = (bundle.entry ?? []).filter((e) => e.search?.mode !== 'include');
    assert.ok(entries.length <= 3, `page ${pages} has ${entries.length} entries, _count was 3`);
    for (const e of entries) {
      seen.set(e.resource.id, (seen.get(e.resource.id) ?? 0) + 1);
    }
    bundle = await client.nextPage({ bundle });
  }
  assert.ok(pages >= 3, `8 matches at _count=3 came in ${pages} pages`);
  assert.deepEqual([...seen.keys()].sort(), [...want].sort());
  for (const [id, n] of seen) {
    assert.equal(n, 1, `Patient ${id} was returned ${n} times`);
  }
});

function transactionBundle(family) {
  const patientUrl = `urn:uuid:${randomUUID()}`;
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: patientUrl, resource: patient(family), request: { method: 'POST', url: 'Patient' } },
      {
        fullUrl: `urn:uuid:${randomUUID()}`,
        resource: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '8302-2', display: 'Body Height' }] },
          subject: { reference: patientUrl },
          valueQuantity: { value: 170, unit: 'cm', system: 'http://unitsofmeasure.org', code: 'cm' },
        },
        request: { method: 'POST', url: 'Observation' },
      },
    ],
  };
}

async function checkTransactionResponse(response) {
  assert.equal(response.resourceType, 'Bundle');
  assert.equal(response.type, 'transaction-response');
  assert.equal(response.entry.length, 2);
  for (const e of response.entry) {
    assert.match(e.response.status, /^201/);
  }
  const ref = (e) => e.response.location.replace(/\/_history\/.*$/, '').replace(/^.*\/(\w+\/[^/]+)$/, '$1');
  const [patientRef, observationRef] = response.entry.map(ref);
  assert.match(patientRef, /^Patient\/[^/]+$/);
  assert.match(observationRef, /^Observation\/[^/]+$/);

  const [, observationId] = observationRef.split('/');
  const observation = await client.read({ resourceType: 'Observation', id: observationId });
  assert.equal(observation.subject.reference, patientRef, 'the urn:uuid reference was not rewritten');
}

test('transaction Bundle with urn:uuid references (POST to the base URL)', async () => {
  // client.request with the absolute base URL sends POST [base], the form
  // the FHIR spec writes; it keeps this check independent of the trailing-slash form below.
  const response = await client.request(baseUrl, {
    method: 'POST',
    body: transactionBundle(uniqueFamily('Txn')),
    options: { headers: { 'content-type': 'application/fhir+json' } },
  });
  await checkTransactionResponse(response);
});

test('transaction Bundle through client.transaction (POST [base]/)', async () => {
  // fhir-kit-client posts transactions and batches to baseUrl + "/".
  const response = await client.transaction({ body: transactionBundle(uniqueFamily('Kit')) });
  await checkTransactionResponse(response);
});

test('delete, then read answers 410 Gone with an OperationOutcome', async () => {
  const created = await client.create({ resourceType: 'Patient', body: patient(uniqueFamily('Gone')) });
  await client.delete({ resourceType: 'Patient', id: created.id });
  const gone = await rejects(() => client.read({ resourceType: 'Patient', id: created.id }));
  assert.equal(gone.status, 410);
  assertOutcome(gone.data);
});

test('an invalid resource gets 4xx with an OperationOutcome naming the element', async () => {
  const bad = await rejects(() => client.create({
    resourceType: 'Patient',
    body: patient(uniqueFamily('Bad'), { birthDate: 'not-a-date' }),
  }));
  assert.ok(bad.status >= 400 && bad.status < 500, `status ${bad.status}`);
  assertOutcome(bad.data);
  const expressions = bad.data.issue.flatMap((i) => i.expression ?? []);
  assert.ok(expressions.includes('Patient.birthDate'), `no issue names Patient.birthDate: ${JSON.stringify(bad.data)}`);
  assert.ok(!JSON.stringify(bad.data).includes('not-a-date'), 'the OperationOutcome echoes the bad value');
});
