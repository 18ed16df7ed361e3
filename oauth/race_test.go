//go:build race

package oauth_test

// floodRequests is how many anonymous authorize requests TestAuthorize_flood
// sends. The race detector makes each about 20 times slower, so under it
// the test sends fewer; the run without it (CI runs both) sends more than
// the 10,000 that once filled the pending table.
const floodRequests = 2000
