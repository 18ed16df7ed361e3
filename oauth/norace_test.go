//go:build !race

package oauth_test

// floodRequests is how many anonymous authorize requests TestAuthorize_flood
// sends: twice the 10,000 that once filled the pending table.
const floodRequests = 20000
